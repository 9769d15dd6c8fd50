//! The command line, in the form of the grpc-go peer's (Go's flag package):
//! `-addr 127.0.0.1:0`, `--addr 127.0.0.1:0` and `-addr=127.0.0.1:0` are
//! the same flag, so the harness starts both peers alike.

use std::time::Duration;

pub const USAGE: &str = "\
Usage: tonic-server [-addr HOST:PORT] [-max-concurrent-streams N] [-grace DURATION]

  -addr HOST:PORT
        address to listen on, host:port (port 0: any free port) (default 127.0.0.1:1337)
  -max-concurrent-streams N
        concurrent calls per connection (256: room for bench/run.py's 250 held calls
        per connection) (default 256)
  -grace DURATION
        on SIGTERM/SIGINT, how long running calls get to finish, as Go writes
        durations: 500ms, 5s, 1m30s (default 5s)

A flag takes one dash or two, and its value after a space or after '='.
";

pub struct Options {
    pub addr: String,
    pub max_concurrent_streams: u32,
    pub grace: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            addr: "127.0.0.1:1337".to_owned(),
            max_concurrent_streams: 256,
            grace: Duration::from_secs(5),
        }
    }
}

pub enum Command {
    Serve(Options),
    /// -h or -help: print USAGE.
    Help,
}

/// The command the arguments (without the program's name) ask for, or
/// what is wrong with them.
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Command, String> {
    let mut options = Options::default();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let flag = arg
            .strip_prefix("--")
            .or_else(|| arg.strip_prefix('-'))
            .filter(|flag| !flag.is_empty())
            .ok_or_else(|| format!("unexpected argument {arg:?}: every argument is a flag"))?;
        let (name, inline_value) = match flag.split_once('=') {
            Some((name, value)) => (name, Some(value.to_owned())),
            None => (flag, None),
        };
        if name == "h" || name == "help" {
            return Ok(Command::Help);
        }
        if !["addr", "max-concurrent-streams", "grace"].contains(&name) {
            return Err(format!("flag provided but not defined: -{name}"));
        }
        let value = inline_value
            .or_else(|| args.next())
            .ok_or_else(|| format!("flag needs an argument: -{name}"))?;
        let invalid = |why: &str| format!("invalid value {value:?} for flag -{name}: {why}");
        match name {
            "addr" => options.addr = value.clone(),
            "max-concurrent-streams" => {
                options.max_concurrent_streams = value
                    .parse()
                    .map_err(|_| invalid("not a whole number from 0 to 4294967295"))?
            }
            _ => {
                options.grace =
                    parse_duration(&value).ok_or_else(|| invalid("not a duration such as 5s"))?
            }
        }
    }
    Ok(Command::Serve(options))
}

/// A duration as Go's flag package reads one: decimal numbers, each with a
/// unit (ns, us, µs, ms, s, m, h), one after another ("1m30s"), or a bare 0.
fn parse_duration(text: &str) -> Option<Duration> {
    match text {
        "0" => return Some(Duration::ZERO),
        "" => return None,
        _ => {}
    }
    let is_number = |c: char| c.is_ascii_digit() || c == '.';
    let mut rest = text;
    let mut seconds = 0.0;
    while !rest.is_empty() {
        let (number, after_number) = rest.split_at(rest.find(|c: char| !is_number(c))?);
        let (unit, after_unit) =
            after_number.split_at(after_number.find(is_number).unwrap_or(after_number.len()));
        let seconds_per_unit = match unit {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        seconds += number.parse::<f64>().ok()? * seconds_per_unit;
        rest = after_unit;
    }
    Duration::try_from_secs_f64(seconds).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serve(args: &[&str]) -> Options {
        match parse(args.iter().map(|arg| arg.to_string())) {
            Ok(Command::Serve(options)) => options,
            Ok(Command::Help) => panic!("{args:?} asked for help"),
            Err(message) => panic!("{args:?}: {message}"),
        }
    }

    fn error(args: &[&str]) -> String {
        match parse(args.iter().map(|arg| arg.to_string())) {
            Err(message) => message,
            Ok(_) => panic!("{args:?} was accepted"),
        }
    }

    #[test]
    fn a_flag_takes_one_dash_or_two_and_its_value_after_a_space_or_an_equals_sign() {
        for args in [
            &["-addr", "127.0.0.1:0"][..],
            &["--addr", "127.0.0.1:0"],
            &["-addr=127.0.0.1:0"],
            &["--addr=127.0.0.1:0"],
        ] {
            assert_eq!(serve(args).addr, "127.0.0.1:0", "{args:?}");
        }
    }

    #[test]
    fn the_defaults_are_the_grpc_go_peers() {
        let options = serve(&[]);
        assert_eq!(options.addr, "127.0.0.1:1337");
        assert_eq!(options.max_concurrent_streams, 256);
        assert_eq!(options.grace, Duration::from_secs(5));
    }

    #[test]
    fn grace_is_read_as_go_writes_durations() {
        assert_eq!(
            serve(&["-grace", "500ms"]).grace,
            Duration::from_millis(500)
        );
        assert_eq!(serve(&["-grace=1m30s"]).grace, Duration::from_secs(90));
        assert_eq!(
            serve(&["-grace", "1.5s"]).grace,
            Duration::from_millis(1500)
        );
        assert_eq!(serve(&["-grace", "0"]).grace, Duration::ZERO);
        for text in ["", "5", "5x", "s", "-1s"] {
            assert!(
                error(&["-grace", text]).starts_with("invalid value"),
                "{text:?}"
            );
        }
    }

    #[test]
    fn help_unknown_flags_missing_values_and_stray_arguments() {
        assert!(matches!(parse(["-h".to_owned()]), Ok(Command::Help)));
        assert!(matches!(parse(["--help".to_owned()]), Ok(Command::Help)));
        assert_eq!(
            error(&["-port", "1"]),
            "flag provided but not defined: -port"
        );
        assert_eq!(error(&["-addr"]), "flag needs an argument: -addr");
        assert!(error(&["-max-concurrent-streams", "many"]).starts_with("invalid value \"many\""));
        assert!(error(&["127.0.0.1:0"]).starts_with("unexpected argument"));
    }
}

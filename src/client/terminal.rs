//! The terminal side of a client: the guide's `input()` prompts, reading
//! one line at a time, and the numbers it accepts.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::AsFd;

use super::ClientError;

/// Standard input without Rust's 8 KiB buffer in front of it. The prompter
/// reads byte by byte and stops at the newline, so clients run one after
/// another on one piped input (`make run-clients < answers`) each take
/// only their own lines, as a terminal would give them.
pub(crate) fn raw_stdin() -> io::Result<File> {
    Ok(File::from(io::stdin().as_fd().try_clone_to_owned()?))
}

/// Prompts and reads lines the way Python's `input()` does: the prompt goes
/// to the output without a newline and is flushed, then one line is read.
///
/// The guide's client-stream session, typed in (input is not echoed: that
/// is the terminal's doing):
///
/// ```
/// use fibonacci_grpc::client::Prompter;
///
/// let mut screen = Vec::new();
/// let mut terminal = Prompter::new("7\n5\n\n".as_bytes(), &mut screen);
/// let prompt = "enter an index (or nothing to stop): ";
/// let mut indices = Vec::new();
/// while let Some(index) = terminal.ask_next_index(prompt)? {
///     indices.push(index);
/// }
/// terminal.say("done sending")?;
/// assert_eq!(indices, [7, 5]);
/// drop(terminal);
/// assert_eq!(String::from_utf8_lossy(&screen), prompt.repeat(3) + "done sending\n");
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Prompter<R, W> {
    input: R,
    output: W,
}

impl<R: Read, W: Write> Prompter<R, W> {
    /// Reads lines from `input`, writes prompts and lines to `output`.
    pub fn new(input: R, output: W) -> Self {
        Prompter { input, output }
    }

    /// Shows `prompt` and reads one line without its line ending; `None` at
    /// the end of the input.
    pub fn ask(&mut self, prompt: &str) -> io::Result<Option<String>> {
        self.output.write_all(prompt.as_bytes())?;
        self.output.flush()?;
        let mut line = Vec::new();
        let mut byte = [0u8];
        loop {
            match self.input.read(&mut byte) {
                Ok(0) if line.is_empty() => return Ok(None),
                Ok(0) => break,
                Ok(_) if byte[0] == b'\n' => break,
                Ok(_) => line.push(byte[0]),
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => return Err(error),
            }
        }
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        Ok(Some(String::from_utf8_lossy(&line).into_owned()))
    }

    /// Asks for an index that must be an int32 (the unary and server-stream
    /// clients, whose guide versions crash on anything else).
    ///
    /// ```
    /// use fibonacci_grpc::client::{ClientError, Prompter};
    ///
    /// let mut terminal = Prompter::new(" 7\nseven\n".as_bytes(), Vec::new());
    /// assert_eq!(terminal.ask_index("enter an index integer: ")?, 7);
    /// assert!(matches!(
    ///     terminal.ask_index("enter an index integer: "),
    ///     Err(ClientError::NotAnInteger(text)) if text == "seven"
    /// ));
    /// # Ok::<(), ClientError>(())
    /// ```
    pub fn ask_index(&mut self, prompt: &str) -> Result<i32, ClientError> {
        let line = self.ask(prompt)?.unwrap_or_default();
        parse_index(&line).ok_or(ClientError::NotAnInteger(line))
    }

    /// Asks for the next index of a stream; `None` (stop sending) for an
    /// empty line, the end of the input, or anything that is not an int32,
    /// as the guide's streaming clients stop on any exception.
    pub fn ask_next_index(&mut self, prompt: &str) -> io::Result<Option<i32>> {
        Ok(self.ask(prompt)?.as_deref().and_then(parse_index))
    }

    /// Prints one line.
    pub fn say(&mut self, line: &str) -> io::Result<()> {
        writeln!(self.output, "{line}")
    }

    /// Sends what was printed on to the terminal.
    pub fn flush(&mut self) -> io::Result<()> {
        self.output.flush()
    }
}

/// An int32 as Python's `int()` reads one: surrounding whitespace and a
/// sign allowed. Values that Python would accept but protobuf's int32
/// would not are refused here, as the guide's clients fail on them too.
///
/// ```
/// use fibonacci_grpc::client::parse_index;
///
/// assert_eq!(parse_index(" +7 "), Some(7));
/// assert_eq!(parse_index("-1"), Some(-1));
/// assert_eq!(parse_index("2147483648"), None); // past i32::MAX
/// assert_eq!(parse_index("7.0"), None);
/// assert_eq!(parse_index(""), None);
/// ```
pub fn parse_index(text: &str) -> Option<i32> {
    text.trim().parse().ok()
}

// Test code only, never compiled into the binaries' paths: an unwrap here
// can only fail the test that runs it.
#[cfg(test)]
mod tests {
    use super::*;

    fn prompter(input: &str) -> Prompter<&[u8], Vec<u8>> {
        Prompter::new(input.as_bytes(), Vec::new())
    }

    #[test]
    fn prompts_without_newline_and_reads_lines() {
        let mut terminal = prompter("7\r\n\nlast");
        assert_eq!(terminal.ask("a: ").unwrap().as_deref(), Some("7"));
        assert_eq!(terminal.ask("b: ").unwrap().as_deref(), Some(""));
        assert_eq!(terminal.ask("c: ").unwrap().as_deref(), Some("last"));
        assert_eq!(terminal.ask("d: ").unwrap(), None);
        terminal.say("done").unwrap();
        assert_eq!(terminal.output, b"a: b: c: d: done\n");
    }

    #[test]
    fn reads_no_further_than_its_own_line() {
        let mut input: &[u8] = b"7\n5\n";
        let mut terminal = Prompter::new(&mut input, Vec::new());
        assert_eq!(terminal.ask("").unwrap().as_deref(), Some("7"));
        assert_eq!(input, b"5\n");
    }

    #[test]
    fn index_parsing_follows_python_int() {
        assert_eq!(parse_index(" 7 "), Some(7));
        assert_eq!(parse_index("+5"), Some(5));
        assert_eq!(parse_index("-1"), Some(-1));
        assert_eq!(parse_index("2147483647"), Some(i32::MAX));
        assert_eq!(parse_index("2147483648"), None);
        assert_eq!(parse_index(""), None);
        assert_eq!(parse_index("seven"), None);
        assert_eq!(parse_index("7.0"), None);
    }

    #[test]
    fn required_index_refuses_non_integers() {
        let mut terminal = prompter("x7\n");
        match terminal.ask_index("? ") {
            Err(ClientError::NotAnInteger(text)) => assert_eq!(text, "x7"),
            other => panic!("expected NotAnInteger, got {other:?}"),
        }
        assert!(matches!(
            prompter("").ask_index("? "),
            Err(ClientError::NotAnInteger(_))
        ));
    }

    #[test]
    fn stream_input_stops_on_anything_but_an_integer() {
        let mut terminal = prompter("4\nfour\n");
        assert_eq!(terminal.ask_next_index("? ").unwrap(), Some(4));
        assert_eq!(terminal.ask_next_index("? ").unwrap(), None);
        assert_eq!(terminal.ask_next_index("? ").unwrap(), None);
    }
}

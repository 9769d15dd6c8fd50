//! gRPC server reflection, so tools (grpcurl, Python's grpcio-reflection,
//! Postman) can list the services and fetch their schemas without a copy
//! of the proto.
//!
//! Served twice: as `grpc.reflection.v1.ServerReflection` and as
//! `grpc.reflection.v1alpha.ServerReflection`, which tools still use. The
//! two protocols have the same messages and wire format, so one handler
//! built on the v1 messages answers both; v1alpha only needs its own method
//! path. The descriptors served are the ones `build.rs` made from `proto/`
//! for the generated messages, so the schema a tool sees is the one
//! compiled in.

use std::collections::HashSet;
use std::sync::Arc;

use futures::prelude::*;
use grpcio::{
    DuplexSink, MethodType, RequestStream, RpcContext, RpcStatusCode, Service, ServiceBuilder,
    WriteFlags,
};
use protobuf::descriptor::{DescriptorProto, EnumDescriptorProto, FileDescriptorProto};
use protobuf::{Message, MessageField};

use crate::inbound::{self, Bounded};
use crate::metrics::{MethodMetrics, Metrics};

mod generated {
    include!(concat!(env!("OUT_DIR"), "/reflection_v1_generated.rs"));
}

use generated::reflection::server_reflection_request::Message_request as Query;
use generated::reflection::{
    ErrorResponse, ExtensionNumberResponse, FileDescriptorResponse, ListServiceResponse,
    ServerReflectionRequest, ServerReflectionResponse, ServiceResponse,
};

/// The reflection service's name, version 1.
pub const V1_SERVICE: &str = "grpc.reflection.v1.ServerReflection";
/// Its name in version 1alpha, which older clients (grpcurl first tries v1)
/// still ask for.
pub const V1ALPHA_SERVICE: &str = "grpc.reflection.v1alpha.ServerReflection";
const V1_METHOD: &str = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo";
const V1ALPHA_METHOD: &str = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo";

/// The v1 reflection proto's own descriptor, so tools can describe the
/// reflection service too.
pub const V1_FILE_DESCRIPTOR: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/reflection_v1_descriptor.bin"));

/// What reflection can tell: the services served and the files that
/// define them.
#[derive(Debug, Default)]
pub struct Catalog {
    services: Vec<String>,
    files: Vec<CatalogFile>,
}

#[derive(Debug)]
struct CatalogFile {
    name: String,
    /// The serialized `FileDescriptorProto`, as it goes on the wire.
    encoded: Vec<u8>,
    /// Fully qualified names defined in the file: messages (nested too)
    /// and their fields, enums and their values, services and their
    /// methods.
    symbols: HashSet<String>,
    /// The fully qualified names of its message types (nested too).
    messages: HashSet<String>,
}

impl Catalog {
    /// A catalog of `services` (fully qualified names) and the serialized
    /// `FileDescriptorProto`s that define them.
    pub fn new(services: &[&str], files: &[&[u8]]) -> protobuf::Result<Catalog> {
        let files = files
            .iter()
            .map(|encoded| {
                let file = FileDescriptorProto::parse_from_bytes(encoded)?;
                let (symbols, messages) = symbols_of(&file);
                Ok(CatalogFile {
                    name: file.name().to_string(),
                    encoded: encoded.to_vec(),
                    symbols,
                    messages,
                })
            })
            .collect::<protobuf::Result<_>>()?;
        Ok(Catalog {
            services: services.iter().map(|s| s.to_string()).collect(),
            files,
        })
    }

    /// The answer to one reflection request.
    fn answer(&self, request: ServerReflectionRequest) -> ServerReflectionResponse {
        let mut response = ServerReflectionResponse::new();
        match &request.message_request {
            Some(Query::ListServices(_)) => {
                let mut list = ListServiceResponse::new();
                for name in &self.services {
                    let mut service = ServiceResponse::new();
                    service.name.clone_from(name);
                    list.service.push(service);
                }
                response.set_list_services_response(list);
            }
            Some(Query::FileByFilename(name)) => {
                match self.files.iter().find(|file| &file.name == name) {
                    Some(file) => response.set_file_descriptor_response(descriptor_response(file)),
                    None => response.set_error_response(not_found(format!("no file {name:?}"))),
                }
            }
            Some(Query::FileContainingSymbol(symbol)) => {
                match self
                    .files
                    .iter()
                    .find(|file| file.symbols.contains(symbol.as_str()))
                {
                    Some(file) => response.set_file_descriptor_response(descriptor_response(file)),
                    None => response.set_error_response(not_found(format!("no symbol {symbol:?}"))),
                }
            }
            // No file here declares extensions.
            Some(Query::FileContainingExtension(request)) => response.set_error_response(
                not_found(format!("no extension of {:?}", request.containing_type)),
            ),
            // A known message has no extensions: an empty list, as grpc-go,
            // C++, Java and Python answer (grpcurl asks this of every type it
            // resolves, and gives up on an error).
            Some(Query::AllExtensionNumbersOfType(name)) => {
                if self.files.iter().any(|file| file.messages.contains(name)) {
                    let mut numbers = ExtensionNumberResponse::new();
                    numbers.base_type_name.clone_from(name);
                    response.set_all_extension_numbers_response(numbers);
                } else {
                    response.set_error_response(not_found(format!("no message type {name:?}")))
                }
            }
            None => response.set_error_response(error_response(
                RpcStatusCode::INVALID_ARGUMENT,
                "the request names no query".to_string(),
            )),
        }
        response.valid_host.clone_from(&request.host);
        response.original_request = MessageField::some(request);
        response
    }
}

/// A request as it arrives off the wire, decoded and answered: what the
/// fuzz targets (`crate::fuzz`) drive. `None` if it does not decode.
#[cfg(test)]
pub(crate) fn answer_encoded(catalog: &Catalog, request: &[u8]) -> Option<Vec<u8>> {
    let request: ServerReflectionRequest =
        crate::inbound::decode(&mut &request[..], request.len()).ok()?;
    Some(
        catalog
            .answer(request)
            .write_to_bytes()
            .expect("an answer encodes"),
    )
}

/// The fully qualified names a file defines (every symbol, and the message
/// types among them). Enum values are named as siblings of their enum, as
/// protobuf scopes them (`pkg.Message.VALUE` for an enum in `pkg.Message`).
fn symbols_of(file: &FileDescriptorProto) -> (HashSet<String>, HashSet<String>) {
    fn qualify(scope: &str, name: &str) -> String {
        if scope.is_empty() {
            name.to_string()
        } else {
            format!("{scope}.{name}")
        }
    }
    fn add_enum(scope: &str, enumeration: &EnumDescriptorProto, symbols: &mut HashSet<String>) {
        symbols.insert(qualify(scope, enumeration.name()));
        for value in &enumeration.value {
            symbols.insert(qualify(scope, value.name()));
        }
    }
    fn add_message(
        scope: &str,
        message: &DescriptorProto,
        symbols: &mut HashSet<String>,
        messages: &mut HashSet<String>,
    ) {
        let name = qualify(scope, message.name());
        for nested in &message.nested_type {
            add_message(&name, nested, symbols, messages);
        }
        for nested in &message.enum_type {
            add_enum(&name, nested, symbols);
        }
        for field in &message.field {
            symbols.insert(qualify(&name, field.name()));
        }
        symbols.insert(name.clone());
        messages.insert(name);
    }

    let package = file.package();
    let mut symbols = HashSet::new();
    let mut messages = HashSet::new();
    for message in &file.message_type {
        add_message(package, message, &mut symbols, &mut messages);
    }
    for enumeration in &file.enum_type {
        add_enum(package, enumeration, &mut symbols);
    }
    for service in &file.service {
        let name = qualify(package, service.name());
        for method in &service.method {
            symbols.insert(qualify(&name, method.name()));
        }
        symbols.insert(name);
    }
    (symbols, messages)
}

fn descriptor_response(file: &CatalogFile) -> FileDescriptorResponse {
    let mut response = FileDescriptorResponse::new();
    // Files here import nothing, so no dependencies need to go along.
    response.file_descriptor_proto.push(file.encoded.clone());
    response
}

fn not_found(message: String) -> ErrorResponse {
    error_response(RpcStatusCode::NOT_FOUND, message)
}

fn error_response(code: RpcStatusCode, message: String) -> ErrorResponse {
    ErrorResponse {
        error_code: code.into(),
        error_message: message,
        ..ErrorResponse::default()
    }
}

/// The reflection handler: one answer per request, in order.
#[derive(Clone)]
pub struct ReflectionService {
    catalog: Arc<Catalog>,
    metrics: Arc<MethodMetrics>,
}

impl ReflectionService {
    fn server_reflection_info(
        &self,
        ctx: RpcContext,
        mut requests: RequestStream<Bounded<ServerReflectionRequest>>,
        mut sink: DuplexSink<ServerReflectionResponse>,
    ) {
        let catalog = Arc::clone(&self.catalog);
        let call = self.metrics.start();
        ctx.spawn(async move {
            let answered: grpcio::Result<RpcStatusCode> = async {
                while let Some(request) = requests.try_next().await? {
                    match request {
                        Ok(request) => {
                            call.received();
                            sink.send((catalog.answer(request), WriteFlags::default()))
                                .await?;
                            call.sent();
                        }
                        Err(too_large) => {
                            sink.fail(too_large.into()).await?;
                            return Ok(RpcStatusCode::RESOURCE_EXHAUSTED);
                        }
                    }
                }
                sink.close().await.map(|()| RpcStatusCode::OK)
            }
            .await;
            // An error here is the client going away: nobody to tell.
            call.finish(answered.unwrap_or(RpcStatusCode::CANCELLED));
            drop(requests); // only now: dropping it early cancels the call
        });
    }
}

/// The v1 and v1alpha reflection services over `catalog`, their calls
/// counted in `metrics`. v1alpha is the same method on the same messages
/// (same wire format) under its own path.
pub fn services(catalog: Catalog, metrics: &Metrics) -> [Service; 2] {
    let catalog = Arc::new(catalog);
    [V1_METHOD, V1ALPHA_METHOD].map(|path| {
        let method = inbound::method(MethodType::Duplex, path);
        let handler = ReflectionService {
            catalog: Arc::clone(&catalog),
            metrics: metrics.method(&method),
        };
        ServiceBuilder::new()
            .add_duplex_streaming_handler(&method, move |ctx, requests, sink| {
                handler.server_reflection_info(ctx, requests, sink)
            })
            .build()
    })
}

// Test code only, never compiled into the server: an unwrap here can only
// fail the test that runs it, not a completion-queue thread.
#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> Catalog {
        Catalog::new(&["fibonacci.Fibonacci"], &[crate::proto::FILE_DESCRIPTOR]).unwrap()
    }

    fn ask(query: Query) -> ServerReflectionResponse {
        let mut request = ServerReflectionRequest::new();
        request.message_request = Some(query);
        catalog().answer(request)
    }

    #[test]
    fn method_paths_are_the_compiled_protos() {
        assert_eq!(crate::proto::method_paths(V1_FILE_DESCRIPTOR), [V1_METHOD]);
        // v1alpha's proto is not compiled (same messages, same wire format):
        // its path is v1's under the v1alpha package.
        assert_eq!(V1ALPHA_METHOD, V1_METHOD.replace(".v1.", ".v1alpha."));
    }

    #[test]
    fn the_descriptor_served_is_the_one_compiled_in() {
        let compiled = generated::reflection::file_descriptor()
            .proto()
            .write_to_bytes()
            .unwrap();
        assert_eq!(V1_FILE_DESCRIPTOR, compiled);
    }

    #[test]
    fn lists_services() {
        let response = ask(Query::ListServices(String::new()));
        let names: Vec<_> = response
            .list_services_response()
            .service
            .iter()
            .map(|s| s.name.as_str())
            .collect();
        assert_eq!(names, ["fibonacci.Fibonacci"]);
    }

    #[test]
    fn finds_files_by_symbol_and_name() {
        for symbol in [
            "fibonacci.Fibonacci",
            "fibonacci.Number",
            "fibonacci.Number.value",
            "fibonacci.Fibonacci.SumIndicies",
        ] {
            let response = ask(Query::FileContainingSymbol(symbol.to_string()));
            let files = &response.file_descriptor_response().file_descriptor_proto;
            assert_eq!(files, &[crate::proto::FILE_DESCRIPTOR.to_vec()], "{symbol}");
        }
        let response = ask(Query::FileByFilename("fibonacci.proto".to_string()));
        assert_eq!(
            response
                .file_descriptor_response()
                .file_descriptor_proto
                .len(),
            1
        );
    }

    #[test]
    fn a_known_message_has_an_empty_list_of_extension_numbers() {
        let response = ask(Query::AllExtensionNumbersOfType(
            "fibonacci.Number".to_string(),
        ));
        assert!(!response.has_error_response(), "{response:?}");
        let numbers = response.all_extension_numbers_response();
        assert_eq!(numbers.base_type_name, "fibonacci.Number");
        assert_eq!(numbers.extension_number, &[] as &[i32]);

        for not_a_message in ["fibonacci.Nothing", "fibonacci.Fibonacci"] {
            let response = ask(Query::AllExtensionNumbersOfType(not_a_message.to_string()));
            assert_eq!(response.error_response().error_code, 5);
            assert_eq!(
                response.error_response().error_message,
                format!("no message type {not_a_message:?}")
            );
        }
    }

    #[test]
    fn enum_values_are_siblings_of_their_enum() {
        let health = Catalog::new(&[], &[crate::health::HEALTH_FILE_DESCRIPTOR]).unwrap();
        for symbol in [
            "grpc.health.v1.HealthCheckResponse.ServingStatus",
            "grpc.health.v1.HealthCheckResponse.SERVING",
            "grpc.health.v1.HealthCheckRequest.service",
        ] {
            assert!(health.files[0].symbols.contains(symbol), "{symbol}");
        }
    }

    #[test]
    fn unknown_names_are_not_found() {
        let response = ask(Query::FileContainingSymbol("fibonacci.Nothing".to_string()));
        assert_eq!(response.error_response().error_code, 5);
        assert_eq!(
            response.error_response().error_message,
            "no symbol \"fibonacci.Nothing\""
        );
        let response = ask(Query::FileByFilename("nothing.proto".to_string()));
        assert_eq!(response.error_response().error_code, 5);
    }
}

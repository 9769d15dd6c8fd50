// The C interface the grpcio crate (0.13) expects from grpcio-sys, on top of
// the public headers of the gRPC C core this project builds.
//
// grpcio drives calls through `grpcwrap_*` helpers rather than through
// grpc_op arrays, whose unions Rust handles poorly; their names and
// signatures are grpcio's contract, the implementation (grpcwrap.cc) is
// this project's. The log bridge at the end restores the two `gpr_*` log
// functions grpcio calls, which the core dropped when it moved its logging
// to abseil.
//
// bindgen reads this header (regen-bindings.sh): everything grpcio uses
// must be reachable from here.

#ifndef FIBONACCI_GRPC_GRPCWRAP_H
#define FIBONACCI_GRPC_GRPCWRAP_H

#include <grpc/support/port_platform.h>

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/compression.h>
#include <grpc/credentials.h>
#include <grpc/grpc.h>
#include <grpc/grpc_posix.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/slice_buffer.h>
#include <grpc/support/alloc.h>
#include <grpc/support/cpu.h>
#include <grpc/support/log.h>
#include <grpc/support/string_util.h>
#include <grpc/support/sync.h>
#include <grpc/support/thd_id.h>
#include <grpc/support/time.h>

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// What one batch of operations sends and receives, kept alive until the
// batch completes. Opaque to Rust.
typedef struct grpcwrap_batch_context grpcwrap_batch_context;

// A call the server has been asked to accept: the call, its method, host
// and deadline, and the client's initial metadata. Opaque to Rust.
typedef struct grpcwrap_request_call_context grpcwrap_request_call_context;

grpcwrap_batch_context* grpcwrap_batch_context_create(void);
void grpcwrap_batch_context_destroy(grpcwrap_batch_context* ctx);
void grpcwrap_batch_context_take_recv_initial_metadata(
    grpcwrap_batch_context* ctx, grpc_metadata_array* into);
grpc_byte_buffer* grpcwrap_batch_context_take_recv_message(
    grpcwrap_batch_context* ctx);
void grpcwrap_batch_context_take_recv_status_on_client_trailing_metadata(
    grpcwrap_batch_context* ctx, grpc_metadata_array* into);
grpc_status_code grpcwrap_batch_context_recv_status_on_client_status(
    const grpcwrap_batch_context* ctx);
const char* grpcwrap_batch_context_recv_status_on_client_details(
    const grpcwrap_batch_context* ctx, size_t* length);
const grpc_metadata_array*
grpcwrap_batch_context_recv_status_on_client_trailing_metadata(
    const grpcwrap_batch_context* ctx);
const char* grpcwrap_batch_context_recv_status_on_client_error_string(
    const grpcwrap_batch_context* ctx);
int32_t grpcwrap_batch_context_recv_close_on_server_cancelled(
    const grpcwrap_batch_context* ctx);

grpcwrap_request_call_context* grpcwrap_request_call_context_create(void);
void grpcwrap_request_call_context_destroy(grpcwrap_request_call_context* ctx);
grpc_call* grpcwrap_request_call_context_ref_call(
    grpcwrap_request_call_context* ctx);
grpc_call* grpcwrap_request_call_context_get_call(
    grpcwrap_request_call_context* ctx);
const char* grpcwrap_request_call_context_method(
    const grpcwrap_request_call_context* ctx, size_t* length);
const char* grpcwrap_request_call_context_host(
    const grpcwrap_request_call_context* ctx, size_t* length);
gpr_timespec grpcwrap_request_call_context_deadline(
    const grpcwrap_request_call_context* ctx);
const grpc_metadata_array* grpcwrap_request_call_context_metadata_array(
    const grpcwrap_request_call_context* ctx);

// Metadata arrays that Rust builds own their keys and values (`cleanup`
// releases them); arrays the core filled borrow them from the call
// (`destroy_metadata_only` frees the array alone).
void grpcwrap_metadata_array_init(grpc_metadata_array* array, size_t capacity);
void grpcwrap_metadata_array_add(grpc_metadata_array* array, const char* key,
                                 size_t key_length, const char* value,
                                 size_t value_length);
const char* grpcwrap_metadata_array_get_key(const grpc_metadata_array* array,
                                            size_t index, size_t* length);
const char* grpcwrap_metadata_array_get_value(const grpc_metadata_array* array,
                                              size_t index, size_t* length);
void grpcwrap_metadata_array_shrink_to_fit(grpc_metadata_array* array);
void grpcwrap_metadata_array_cleanup(grpc_metadata_array* array);
void grpcwrap_metadata_array_destroy_metadata_only(grpc_metadata_array* array);

grpc_channel_args* grpcwrap_channel_args_create(size_t count);
void grpcwrap_channel_args_set_string(grpc_channel_args* args, size_t index,
                                      const char* key, const char* value);
void grpcwrap_channel_args_set_integer(grpc_channel_args* args, size_t index,
                                       const char* key, int value);
void grpcwrap_channel_args_set_pointer_vtable(
    grpc_channel_args* args, size_t index, const char* key, void* value,
    const grpc_arg_pointer_vtable* vtable);
void grpcwrap_channel_args_destroy(grpc_channel_args* args);

grpc_call* grpcwrap_channel_create_call(
    grpc_channel* channel, grpc_call* parent_call, uint32_t propagation_mask,
    grpc_completion_queue* cq, const char* method, size_t method_length,
    const char* host, size_t host_length, gpr_timespec deadline);

// Client side: the first batch of each kind of call.
grpc_call_error grpcwrap_call_start_unary(
    grpc_call* call, grpcwrap_batch_context* ctx, grpc_slice* message,
    uint32_t write_flags, grpc_metadata_array* initial_metadata,
    uint32_t initial_metadata_flags, void* tag);
grpc_call_error grpcwrap_call_start_client_streaming(
    grpc_call* call, grpcwrap_batch_context* ctx,
    grpc_metadata_array* initial_metadata, uint32_t initial_metadata_flags,
    void* tag);
grpc_call_error grpcwrap_call_start_server_streaming(
    grpc_call* call, grpcwrap_batch_context* ctx, grpc_slice* message,
    uint32_t write_flags, grpc_metadata_array* initial_metadata,
    uint32_t initial_metadata_flags, void* tag);
grpc_call_error grpcwrap_call_start_duplex_streaming(
    grpc_call* call, grpcwrap_batch_context* ctx,
    grpc_metadata_array* initial_metadata, uint32_t initial_metadata_flags,
    void* tag);

// Both sides: one operation (or two) per batch.
grpc_call_error grpcwrap_call_recv_initial_metadata(
    grpc_call* call, grpcwrap_batch_context* ctx, void* tag);
grpc_call_error grpcwrap_call_send_message(
    grpc_call* call, grpcwrap_batch_context* ctx, grpc_slice* message,
    uint32_t write_flags, grpc_metadata_array* initial_metadata,
    uint32_t initial_metadata_flags, void* tag);
grpc_call_error grpcwrap_call_send_close_from_client(grpc_call* call,
                                                     void* tag);
grpc_call_error grpcwrap_call_recv_message(grpc_call* call,
                                           grpcwrap_batch_context* ctx,
                                           void* tag);
grpc_call_error grpcwrap_call_kick_completion_queue(grpc_call* call,
                                                    void* tag);

// Server side.
grpc_call_error grpcwrap_call_start_serverside(grpc_call* call,
                                              grpcwrap_batch_context* ctx,
                                              void* tag);
grpc_call_error grpcwrap_call_send_status_from_server(
    grpc_call* call, grpcwrap_batch_context* ctx, grpc_status_code status,
    const char* details, size_t details_length,
    grpc_metadata_array* initial_metadata, uint32_t initial_metadata_flags,
    grpc_metadata_array* trailing_metadata, grpc_slice* optional_message,
    uint32_t write_flags, void* tag);
grpc_call_error grpcwrap_server_request_call(
    grpc_server* server, grpc_completion_queue* cq,
    grpcwrap_request_call_context* ctx, void* tag);

// The log bridge. The core logs through abseil; these forward abseil's
// log entries at or above a severity to one callback, and stop abseil
// writing them to stderr itself while a callback is set.
typedef struct {
  const char* file;
  int line;
  gpr_log_severity severity;
  const char* message;
} gpr_log_func_args;

typedef void (*gpr_log_func)(gpr_log_func_args* args);

void gpr_set_log_function(gpr_log_func func);
void gpr_set_log_verbosity(gpr_log_severity min_severity_to_print);

#ifdef __cplusplus
}
#endif

#endif  // FIBONACCI_GRPC_GRPCWRAP_H

// The grpcwrap_* helpers grpcio calls (see grpcwrap.h for the contract),
// written for this project against the core's public headers, and the log
// bridge from abseil to grpcio's log callback.

#include "grpcwrap.h"

#include <string.h>

#include <atomic>
#include <mutex>
#include <string>

#include "absl/base/log_severity.h"
#include "absl/log/globals.h"
#include "absl/log/initialize.h"
#include "absl/log/log_entry.h"
#include "absl/log/log_sink.h"
#include "absl/log/log_sink_registry.h"

struct grpcwrap_batch_context {
  // Sent: owned here until the batch completes.
  grpc_metadata_array send_initial_metadata;
  grpc_byte_buffer* send_message;
  grpc_metadata_array send_trailing_metadata;
  // Received: filled by the core, taken or read by Rust.
  grpc_metadata_array recv_initial_metadata;
  grpc_byte_buffer* recv_message;
  grpc_metadata_array recv_trailing_metadata;
  grpc_status_code recv_status;
  grpc_slice recv_status_details;
  const char* recv_error_string;
  int recv_close_cancelled;
};

struct grpcwrap_request_call_context {
  grpc_call* call;
  grpc_call_details details;
  grpc_metadata_array metadata;
};

namespace {

template <typename T>
T* allocate_zeroed() {
  void* memory = gpr_malloc(sizeof(T));
  memset(memory, 0, sizeof(T));
  return static_cast<T*>(memory);
}

// Hands the array's storage to `into` and leaves `from` empty.
void move_metadata(grpc_metadata_array* into, grpc_metadata_array* from) {
  if (from == nullptr) {
    *into = grpc_metadata_array{0, 0, nullptr};
    return;
  }
  *into = *from;
  *from = grpc_metadata_array{0, 0, nullptr};
}

// Releases the keys and values (slices this side created) and the array.
void free_owned_metadata(grpc_metadata_array* array) {
  for (size_t i = 0; array->metadata != nullptr && i < array->count; i++) {
    grpc_slice_unref(array->metadata[i].key);
    grpc_slice_unref(array->metadata[i].value);
  }
  gpr_free(array->metadata);
  array->metadata = nullptr;
  array->count = 0;
  array->capacity = 0;
}

const char* slice_bytes(const grpc_slice& slice, size_t* length) {
  *length = GRPC_SLICE_LENGTH(slice);
  return reinterpret_cast<const char*>(GRPC_SLICE_START_PTR(slice));
}

// One batch of operations, built in the order grpcio expects and started
// on a call. The context keeps what the operations point at alive.
class Batch {
 public:
  explicit Batch(grpcwrap_batch_context* ctx) : ctx_(ctx) {}

  Batch& send_initial_metadata(grpc_metadata_array* metadata, uint32_t flags) {
    move_metadata(&ctx_->send_initial_metadata, metadata);
    grpc_op& op = add(GRPC_OP_SEND_INITIAL_METADATA, flags);
    op.data.send_initial_metadata.count = ctx_->send_initial_metadata.count;
    op.data.send_initial_metadata.metadata =
        ctx_->send_initial_metadata.metadata;
    return *this;
  }

  Batch& send_message(grpc_slice* message, uint32_t flags) {
    ctx_->send_message = grpc_raw_byte_buffer_create(message, 1);
    add(GRPC_OP_SEND_MESSAGE, flags).data.send_message.send_message =
        ctx_->send_message;
    return *this;
  }

  Batch& send_close_from_client() {
    add(GRPC_OP_SEND_CLOSE_FROM_CLIENT, 0);
    return *this;
  }

  Batch& send_status_from_server(grpc_status_code status,
                                 grpc_slice* details,
                                 grpc_metadata_array* trailing_metadata) {
    move_metadata(&ctx_->send_trailing_metadata, trailing_metadata);
    auto& data = add(GRPC_OP_SEND_STATUS_FROM_SERVER, 0)
                     .data.send_status_from_server;
    data.status = status;
    data.status_details = details;
    data.trailing_metadata_count = ctx_->send_trailing_metadata.count;
    data.trailing_metadata = ctx_->send_trailing_metadata.metadata;
    return *this;
  }

  Batch& recv_initial_metadata() {
    add(GRPC_OP_RECV_INITIAL_METADATA, 0)
        .data.recv_initial_metadata.recv_initial_metadata =
        &ctx_->recv_initial_metadata;
    return *this;
  }

  Batch& recv_message() {
    add(GRPC_OP_RECV_MESSAGE, 0).data.recv_message.recv_message =
        &ctx_->recv_message;
    return *this;
  }

  Batch& recv_status_on_client() {
    auto& data = add(GRPC_OP_RECV_STATUS_ON_CLIENT, 0)
                     .data.recv_status_on_client;
    data.trailing_metadata = &ctx_->recv_trailing_metadata;
    data.status = &ctx_->recv_status;
    data.status_details = &ctx_->recv_status_details;
    data.error_string = &ctx_->recv_error_string;
    return *this;
  }

  Batch& recv_close_on_server() {
    add(GRPC_OP_RECV_CLOSE_ON_SERVER, 0).data.recv_close_on_server.cancelled =
        &ctx_->recv_close_cancelled;
    return *this;
  }

  grpc_call_error start(grpc_call* call, void* tag) {
    return grpc_call_start_batch(call, ops_, count_, tag, nullptr);
  }

 private:
  // The most any helper puts in one batch (a unary call).
  static constexpr size_t kMaxOps = 6;

  grpc_op& add(grpc_op_type type, uint32_t flags) {
    grpc_op& op = ops_[count_++];
    memset(&op, 0, sizeof(op));
    op.op = type;
    op.flags = flags;
    return op;
  }

  grpcwrap_batch_context* ctx_;
  grpc_op ops_[kMaxOps];
  size_t count_ = 0;
};

}  // namespace

extern "C" {

grpcwrap_batch_context* grpcwrap_batch_context_create(void) {
  return allocate_zeroed<grpcwrap_batch_context>();
}

void grpcwrap_batch_context_destroy(grpcwrap_batch_context* ctx) {
  if (ctx == nullptr) return;
  free_owned_metadata(&ctx->send_initial_metadata);
  grpc_byte_buffer_destroy(ctx->send_message);
  free_owned_metadata(&ctx->send_trailing_metadata);
  // Received metadata borrows its slices from the call.
  gpr_free(ctx->recv_initial_metadata.metadata);
  grpc_byte_buffer_destroy(ctx->recv_message);
  gpr_free(ctx->recv_trailing_metadata.metadata);
  grpc_slice_unref(ctx->recv_status_details);
  gpr_free(const_cast<char*>(ctx->recv_error_string));
  gpr_free(ctx);
}

void grpcwrap_batch_context_take_recv_initial_metadata(
    grpcwrap_batch_context* ctx, grpc_metadata_array* into) {
  move_metadata(into, &ctx->recv_initial_metadata);
}

grpc_byte_buffer* grpcwrap_batch_context_take_recv_message(
    grpcwrap_batch_context* ctx) {
  grpc_byte_buffer* message = ctx->recv_message;
  ctx->recv_message = nullptr;
  return message;
}

void grpcwrap_batch_context_take_recv_status_on_client_trailing_metadata(
    grpcwrap_batch_context* ctx, grpc_metadata_array* into) {
  move_metadata(into, &ctx->recv_trailing_metadata);
}

grpc_status_code grpcwrap_batch_context_recv_status_on_client_status(
    const grpcwrap_batch_context* ctx) {
  return ctx->recv_status;
}

const char* grpcwrap_batch_context_recv_status_on_client_details(
    const grpcwrap_batch_context* ctx, size_t* length) {
  return slice_bytes(ctx->recv_status_details, length);
}

const grpc_metadata_array*
grpcwrap_batch_context_recv_status_on_client_trailing_metadata(
    const grpcwrap_batch_context* ctx) {
  return &ctx->recv_trailing_metadata;
}

const char* grpcwrap_batch_context_recv_status_on_client_error_string(
    const grpcwrap_batch_context* ctx) {
  return ctx->recv_error_string;
}

int32_t grpcwrap_batch_context_recv_close_on_server_cancelled(
    const grpcwrap_batch_context* ctx) {
  return static_cast<int32_t>(ctx->recv_close_cancelled);
}

grpcwrap_request_call_context* grpcwrap_request_call_context_create(void) {
  return allocate_zeroed<grpcwrap_request_call_context>();
}

void grpcwrap_request_call_context_destroy(grpcwrap_request_call_context* ctx) {
  if (ctx == nullptr) return;
  if (ctx->call != nullptr) grpc_call_unref(ctx->call);
  grpc_call_details_destroy(&ctx->details);
  gpr_free(ctx->metadata.metadata);
  gpr_free(ctx);
}

grpc_call* grpcwrap_request_call_context_ref_call(
    grpcwrap_request_call_context* ctx) {
  grpc_call_ref(ctx->call);
  return ctx->call;
}

grpc_call* grpcwrap_request_call_context_get_call(
    grpcwrap_request_call_context* ctx) {
  return ctx->call;
}

const char* grpcwrap_request_call_context_method(
    const grpcwrap_request_call_context* ctx, size_t* length) {
  return slice_bytes(ctx->details.method, length);
}

const char* grpcwrap_request_call_context_host(
    const grpcwrap_request_call_context* ctx, size_t* length) {
  return slice_bytes(ctx->details.host, length);
}

gpr_timespec grpcwrap_request_call_context_deadline(
    const grpcwrap_request_call_context* ctx) {
  return ctx->details.deadline;
}

const grpc_metadata_array* grpcwrap_request_call_context_metadata_array(
    const grpcwrap_request_call_context* ctx) {
  return &ctx->metadata;
}

void grpcwrap_metadata_array_init(grpc_metadata_array* array,
                                  size_t capacity) {
  array->count = 0;
  array->capacity = capacity;
  array->metadata = nullptr;
  if (capacity > 0) {
    size_t bytes = capacity * sizeof(grpc_metadata);
    array->metadata = static_cast<grpc_metadata*>(gpr_malloc(bytes));
    memset(array->metadata, 0, bytes);
  }
}

void grpcwrap_metadata_array_add(grpc_metadata_array* array, const char* key,
                                 size_t key_length, const char* value,
                                 size_t value_length) {
  if (array->count == array->capacity) {
    size_t capacity = array->capacity == 0 ? 4 : array->capacity * 2;
    array->metadata = static_cast<grpc_metadata*>(
        gpr_realloc(array->metadata, capacity * sizeof(grpc_metadata)));
    memset(array->metadata + array->count, 0,
           (capacity - array->count) * sizeof(grpc_metadata));
    array->capacity = capacity;
  }
  grpc_metadata& entry = array->metadata[array->count++];
  entry.key = grpc_slice_from_copied_buffer(key, key_length);
  entry.value = grpc_slice_from_copied_buffer(value, value_length);
}

const char* grpcwrap_metadata_array_get_key(const grpc_metadata_array* array,
                                            size_t index, size_t* length) {
  return slice_bytes(array->metadata[index].key, length);
}

const char* grpcwrap_metadata_array_get_value(const grpc_metadata_array* array,
                                              size_t index, size_t* length) {
  return slice_bytes(array->metadata[index].value, length);
}

void grpcwrap_metadata_array_shrink_to_fit(grpc_metadata_array* array) {
  if (array->count == array->capacity) return;
  if (array->count == 0) {
    free_owned_metadata(array);
    return;
  }
  array->metadata = static_cast<grpc_metadata*>(
      gpr_realloc(array->metadata, array->count * sizeof(grpc_metadata)));
  array->capacity = array->count;
}

void grpcwrap_metadata_array_cleanup(grpc_metadata_array* array) {
  free_owned_metadata(array);
}

void grpcwrap_metadata_array_destroy_metadata_only(grpc_metadata_array* array) {
  gpr_free(array->metadata);
}

grpc_channel_args* grpcwrap_channel_args_create(size_t count) {
  auto* args = allocate_zeroed<grpc_channel_args>();
  args->num_args = count;
  args->args = static_cast<grpc_arg*>(gpr_malloc(count * sizeof(grpc_arg)));
  memset(args->args, 0, count * sizeof(grpc_arg));
  return args;
}

void grpcwrap_channel_args_set_string(grpc_channel_args* args, size_t index,
                                      const char* key, const char* value) {
  grpc_arg& arg = args->args[index];
  arg.type = GRPC_ARG_STRING;
  arg.key = gpr_strdup(key);
  arg.value.string = gpr_strdup(value);
}

void grpcwrap_channel_args_set_integer(grpc_channel_args* args, size_t index,
                                       const char* key, int value) {
  grpc_arg& arg = args->args[index];
  arg.type = GRPC_ARG_INTEGER;
  arg.key = gpr_strdup(key);
  arg.value.integer = value;
}

void grpcwrap_channel_args_set_pointer_vtable(
    grpc_channel_args* args, size_t index, const char* key, void* value,
    const grpc_arg_pointer_vtable* vtable) {
  grpc_arg& arg = args->args[index];
  arg.type = GRPC_ARG_POINTER;
  arg.key = gpr_strdup(key);
  arg.value.pointer.p = vtable->copy(value);
  arg.value.pointer.vtable = vtable;
}

void grpcwrap_channel_args_destroy(grpc_channel_args* args) {
  if (args == nullptr) return;
  for (size_t i = 0; i < args->num_args; i++) {
    grpc_arg& arg = args->args[i];
    gpr_free(arg.key);
    if (arg.type == GRPC_ARG_STRING) {
      gpr_free(arg.value.string);
    } else if (arg.type == GRPC_ARG_POINTER) {
      arg.value.pointer.vtable->destroy(arg.value.pointer.p);
    }
  }
  gpr_free(args->args);
  gpr_free(args);
}

grpc_call* grpcwrap_channel_create_call(
    grpc_channel* channel, grpc_call* parent_call, uint32_t propagation_mask,
    grpc_completion_queue* cq, const char* method, size_t method_length,
    const char* host, size_t host_length, gpr_timespec deadline) {
  grpc_slice method_slice = grpc_slice_from_copied_buffer(method, method_length);
  grpc_slice host_slice = grpc_empty_slice();
  if (host != nullptr) {
    host_slice = grpc_slice_from_copied_buffer(host, host_length);
  }
  grpc_call* call = grpc_channel_create_call(
      channel, parent_call, propagation_mask, cq, method_slice,
      host != nullptr ? &host_slice : nullptr, deadline, nullptr);
  grpc_slice_unref(method_slice);
  grpc_slice_unref(host_slice);
  return call;
}

grpc_call_error grpcwrap_call_start_unary(
    grpc_call* call, grpcwrap_batch_context* ctx, grpc_slice* message,
    uint32_t write_flags, grpc_metadata_array* initial_metadata,
    uint32_t initial_metadata_flags, void* tag) {
  return Batch(ctx)
      .send_initial_metadata(initial_metadata, initial_metadata_flags)
      .send_message(message, write_flags)
      .send_close_from_client()
      .recv_initial_metadata()
      .recv_message()
      .recv_status_on_client()
      .start(call, tag);
}

grpc_call_error grpcwrap_call_start_client_streaming(
    grpc_call* call, grpcwrap_batch_context* ctx,
    grpc_metadata_array* initial_metadata, uint32_t initial_metadata_flags,
    void* tag) {
  return Batch(ctx)
      .send_initial_metadata(initial_metadata, initial_metadata_flags)
      .recv_initial_metadata()
      .recv_message()
      .recv_status_on_client()
      .start(call, tag);
}

grpc_call_error grpcwrap_call_start_server_streaming(
    grpc_call* call, grpcwrap_batch_context* ctx, grpc_slice* message,
    uint32_t write_flags, grpc_metadata_array* initial_metadata,
    uint32_t initial_metadata_flags, void* tag) {
  return Batch(ctx)
      .send_initial_metadata(initial_metadata, initial_metadata_flags)
      .send_message(message, write_flags)
      .send_close_from_client()
      .recv_status_on_client()
      .start(call, tag);
}

grpc_call_error grpcwrap_call_start_duplex_streaming(
    grpc_call* call, grpcwrap_batch_context* ctx,
    grpc_metadata_array* initial_metadata, uint32_t initial_metadata_flags,
    void* tag) {
  return Batch(ctx)
      .send_initial_metadata(initial_metadata, initial_metadata_flags)
      .recv_status_on_client()
      .start(call, tag);
}

grpc_call_error grpcwrap_call_recv_initial_metadata(
    grpc_call* call, grpcwrap_batch_context* ctx, void* tag) {
  return Batch(ctx).recv_initial_metadata().start(call, tag);
}

grpc_call_error grpcwrap_call_send_message(
    grpc_call* call, grpcwrap_batch_context* ctx, grpc_slice* message,
    uint32_t write_flags, grpc_metadata_array* initial_metadata,
    uint32_t initial_metadata_flags, void* tag) {
  Batch batch(ctx);
  batch.send_message(message, write_flags);
  if (initial_metadata != nullptr) {
    batch.send_initial_metadata(initial_metadata, initial_metadata_flags);
  }
  return batch.start(call, tag);
}

grpc_call_error grpcwrap_call_send_close_from_client(grpc_call* call,
                                                     void* tag) {
  return Batch(nullptr).send_close_from_client().start(call, tag);
}

grpc_call_error grpcwrap_call_recv_message(grpc_call* call,
                                           grpcwrap_batch_context* ctx,
                                           void* tag) {
  return Batch(ctx).recv_message().start(call, tag);
}

grpc_call_error grpcwrap_call_kick_completion_queue(grpc_call* call,
                                                    void* tag) {
  // An empty batch completes at once: the tag is delivered on the call's
  // queue without touching the call's state, from any thread.
  return grpc_call_start_batch(call, nullptr, 0, tag, nullptr);
}

grpc_call_error grpcwrap_call_start_serverside(grpc_call* call,
                                              grpcwrap_batch_context* ctx,
                                              void* tag) {
  return Batch(ctx).recv_close_on_server().start(call, tag);
}

grpc_call_error grpcwrap_call_send_status_from_server(
    grpc_call* call, grpcwrap_batch_context* ctx, grpc_status_code status,
    const char* details, size_t details_length,
    grpc_metadata_array* initial_metadata, uint32_t initial_metadata_flags,
    grpc_metadata_array* trailing_metadata, grpc_slice* optional_message,
    uint32_t write_flags, void* tag) {
  // The core takes its own reference to the details while the batch starts.
  grpc_slice details_slice =
      grpc_slice_from_copied_buffer(details, details_length);
  Batch batch(ctx);
  batch.send_status_from_server(status, &details_slice, trailing_metadata);
  if (optional_message != nullptr) {
    batch.send_message(optional_message, write_flags);
  }
  if (initial_metadata != nullptr) {
    batch.send_initial_metadata(initial_metadata, initial_metadata_flags);
  }
  grpc_call_error result = batch.start(call, tag);
  grpc_slice_unref(details_slice);
  return result;
}

grpc_call_error grpcwrap_server_request_call(
    grpc_server* server, grpc_completion_queue* cq,
    grpcwrap_request_call_context* ctx, void* tag) {
  return grpc_server_request_call(server, &ctx->call, &ctx->details,
                                  &ctx->metadata, cq, cq, tag);
}

}  // extern "C"

// The log bridge.
namespace {

gpr_log_severity to_gpr_severity(absl::LogSeverity severity) {
  switch (severity) {
    case absl::LogSeverity::kInfo:
      return GPR_LOG_SEVERITY_INFO;
    default:
      // gpr had no warning level; what the core now logs as a warning it
      // used to log as an error.
      return GPR_LOG_SEVERITY_ERROR;
  }
}

class CallbackSink final : public absl::LogSink {
 public:
  void Send(const absl::LogEntry& entry) override {
    gpr_log_func callback = callback_.load(std::memory_order_acquire);
    if (callback == nullptr) return;
    // The entry's views are not NUL-terminated.
    std::string file(entry.source_filename());
    std::string message(entry.text_message());
    gpr_log_func_args args{file.c_str(), entry.source_line(),
                           to_gpr_severity(entry.log_severity()),
                           message.c_str()};
    callback(&args);
  }

  std::atomic<gpr_log_func> callback_{nullptr};
};

CallbackSink& callback_sink() {
  // Lives as long as the process: abseil may call it from any thread.
  static CallbackSink* sink = [] {
    auto* created = new CallbackSink();
    absl::AddLogSink(created);
    return created;
  }();
  return *sink;
}

// abseil writes every entry to stderr until its logging is initialised;
// afterwards only what reaches its stderr threshold (errors, by default),
// as Python's grpcio does at import.
struct InitializeAbseilLog {
  InitializeAbseilLog() { absl::InitializeLog(); }
};
InitializeAbseilLog initialize_abseil_log;

}  // namespace

extern "C" {

void gpr_set_log_function(gpr_log_func func) {
  callback_sink().callback_.store(func, std::memory_order_release);
  // With a callback, it alone decides what is written; without one, the
  // core's entries are dropped (grpcio passes none to turn logging off).
  absl::SetStderrThreshold(absl::LogSeverityAtLeast::kInfinity);
  if (func == nullptr) {
    absl::SetMinLogLevel(absl::LogSeverityAtLeast::kInfinity);
  }
}

void gpr_set_log_verbosity(gpr_log_severity min_severity_to_print) {
  absl::SetMinLogLevel(min_severity_to_print == GPR_LOG_SEVERITY_ERROR
                           ? absl::LogSeverityAtLeast::kWarning
                           : absl::LogSeverityAtLeast::kInfo);
}

}  // extern "C"

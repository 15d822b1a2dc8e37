#include "rpc/codec.h"

#include <errno.h>

#include <grpc/byte_buffer_reader.h>
#include <grpc/slice.h>

grpc_byte_buffer *codec_pack(const ProtobufCMessage *m)
{
    size_t len = protobuf_c_message_get_packed_size(m);
    grpc_slice slice = grpc_slice_malloc(len);
    protobuf_c_message_pack(m, GRPC_SLICE_START_PTR(slice));
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&slice, 1);
    grpc_slice_unref(slice);
    return bb;
}

int codec_unpack(grpc_byte_buffer *bb, const ProtobufCMessageDescriptor *d, ProtobufCMessage **out)
{
    if (grpc_byte_buffer_length(bb) > RPC_MAX_MESSAGE)
        return -EMSGSIZE;
    grpc_byte_buffer_reader reader;
    if (!grpc_byte_buffer_reader_init(&reader, bb))
        return -EINVAL;
    grpc_slice slice = grpc_byte_buffer_reader_readall(&reader);
    grpc_byte_buffer_reader_destroy(&reader);
    ProtobufCMessage *m =
        protobuf_c_message_unpack(d, NULL, GRPC_SLICE_LENGTH(slice), GRPC_SLICE_START_PTR(slice));
    grpc_slice_unref(slice);
    if (!m)
        return -EINVAL;
    *out = m;
    return 0;
}

grpc_status_code codec_status_from_errno(int err)
{
    switch (err) {
    case 0:
        return GRPC_STATUS_OK;
    case -EINVAL:
        return GRPC_STATUS_INVALID_ARGUMENT;
    case -ENOENT:
        return GRPC_STATUS_NOT_FOUND;
    case -EEXIST:
        return GRPC_STATUS_ALREADY_EXISTS;
    case -ERANGE:
        return GRPC_STATUS_OUT_OF_RANGE;
    case -EMSGSIZE:
    case -ENOSPC:
    case -ENOMEM:
        return GRPC_STATUS_RESOURCE_EXHAUSTED;
    case -EACCES:
    case -EPERM:
        return GRPC_STATUS_PERMISSION_DENIED;
    case -EAGAIN:
    case -ESHUTDOWN:
        return GRPC_STATUS_UNAVAILABLE;
    case -ENOSYS:
        return GRPC_STATUS_UNIMPLEMENTED;
    case -ECANCELED:
        return GRPC_STATUS_CANCELLED;
    case -ETIMEDOUT:
        return GRPC_STATUS_DEADLINE_EXCEEDED;
    case -EBUSY:
        return GRPC_STATUS_FAILED_PRECONDITION;
    default:
        return GRPC_STATUS_INTERNAL;
    }
}

/*
 * protobuf-c messages to and from gRPC byte buffers, and the one place where an errno-style error
 * becomes a gRPC status.
 */
#ifndef CRAWLAB_CODEC_H
#define CRAWLAB_CODEC_H

#include <grpc/byte_buffer.h>
#include <grpc/status.h>
#include <protobuf-c/protobuf-c.h>

/* Largest message either side sends or accepts (Crawlab's limit). */
#define RPC_MAX_MESSAGE (4 * 1024 * 1024)

/* Packs m into a new byte buffer (caller owns it: grpc_byte_buffer_destroy). NULL on ENOMEM. */
grpc_byte_buffer *codec_pack(const ProtobufCMessage *m);

/*
 * Unpacks bb as a message of type d. Returns 0 and *out (free with
 * protobuf_c_message_free_unpacked), -EINVAL when the bytes are not a valid message, -EMSGSIZE when
 * larger than RPC_MAX_MESSAGE. bb stays owned by the caller.
 */
int codec_unpack(grpc_byte_buffer *bb, const ProtobufCMessageDescriptor *d, ProtobufCMessage **out);

/* Maps a negative errno from the application layers to the status a peer should see. */
grpc_status_code codec_status_from_errno(int err);

#endif

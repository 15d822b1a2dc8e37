/*
 * Shared by the tests of request validation: every request message type of NodeService,
 * TaskService and AdminService, the set that src/rpc/validate.c must cover. test_validate checks
 * that each has a validator; fuzz_requests picks the type of its input from this list by index, so
 * the order is part of its seed corpus: append new types at the end.
 */
#ifndef CRAWLAB_TESTS_REQUESTS_H
#define CRAWLAB_TESTS_REQUESTS_H

#include <stddef.h>

#include <protobuf-c/protobuf-c.h>

extern const ProtobufCMessageDescriptor *const request_types[];
extern const size_t n_request_types;

#endif

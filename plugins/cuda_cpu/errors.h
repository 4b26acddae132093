/*
 * The runtime's last-error slot, shared by the scheduler (launch and kernel failures) and the
 * cuda* API functions (cudaGetLastError, cudaGetErrorString).
 */
#pragma once

#include <cuda_runtime_api.h>

#include <string>

namespace cudacpu
{
namespace detail
{

//! Remember ``code`` for the next cudaGetLastError and print ``message`` to stderr; the first error wins.
void recordError(cudaError_t code, std::string const& message);

} // namespace detail
} // namespace cudacpu

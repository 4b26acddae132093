/*
 * Stackful fibers for the CPU CUDA runtime: one per CUDA thread, switched cooperatively.
 * x86-64 uses a six-register switch (fiber.cpp); other targets fall back to ucontext.
 */
#pragma once

#include <cstddef>
#include <cstdint>

namespace cudacpu
{
namespace detail
{
#pragma GCC visibility push(hidden)

using FiberEntry = void (*)(void*);

struct Fiber
{
    void* sp = nullptr;        // saved stack pointer (x86-64) or ucontext_t* (fallback)
    char* stack = nullptr;     // lowest address of the stack
    size_t stackSize = 0;
    size_t topGap = 0;         // unused bytes at the top, different per fiber (see fiberPrepare)
    bool ownsStack = false;    // false for the host thread's own context
};

//! Size of each fiber's stack (larger under AddressSanitizer, whose frames carry redzones).
size_t fiberStackSize();

//! Give ``f`` a fresh stack frame that calls entry(arg) when first switched to; entry must never return.
void fiberPrepare(Fiber& f, FiberEntry entry, void* arg);

//! Describe the calling host thread's stack in ``f`` (needed by the sanitizer annotations).
void fiberAdoptHostThread(Fiber& f);

//! Save the current context into ``from`` and resume ``to``. ``fromIsDone``: ``from`` is never resumed.
void fiberSwitch(Fiber& from, Fiber& to, bool fromIsDone = false);

//! First thing a fiber's entry function calls (completes the sanitizer's switch bookkeeping).
void fiberStarted();

#pragma GCC visibility pop

} // namespace detail
} // namespace cudacpu

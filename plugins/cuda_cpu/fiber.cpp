#include "fiber.h"

#include <cstdio>
#include <cstdlib>
#include <pthread.h>
#include <sys/mman.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#define CUDACPU_ASAN 1
#else
#define CUDACPU_ASAN 0
#endif

// CUDACPU_UCONTEXT forces the portable fallback (to test it on x86-64)
#if defined(__x86_64__) && !defined(CUDACPU_UCONTEXT)
#define CUDACPU_ASM_SWITCH 1
#else
#define CUDACPU_ASM_SWITCH 0
#include <ucontext.h>
#endif

namespace cudacpu
{
namespace detail
{

#if CUDACPU_ASM_SWITCH
// Callee-saved registers go on the old stack, the stack pointer is swapped, the new ones are popped.
// A fresh fiber "returns" into cudacpu_fiber_start, which calls entry (r13) with arg (r12).
extern "C" void cudacpu_switch_stack(void** saveSp, void* loadSp);
extern "C" void cudacpu_fiber_start();
asm(R"(
    .text
    .globl cudacpu_switch_stack
    .hidden cudacpu_switch_stack
    .type cudacpu_switch_stack,@function
cudacpu_switch_stack:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size cudacpu_switch_stack, .-cudacpu_switch_stack

    .globl cudacpu_fiber_start
    .hidden cudacpu_fiber_start
    .type cudacpu_fiber_start,@function
cudacpu_fiber_start:
    movq %r12, %rdi
    callq *%r13
    ud2
    .size cudacpu_fiber_start, .-cudacpu_fiber_start
    .section .note.GNU-stack,"",@progbits
    .text
)");
#endif

size_t fiberStackSize()
{
    return CUDACPU_ASAN ? 512 * 1024 : 128 * 1024;
}

void fiberPrepare(Fiber& f, FiberEntry entry, void* arg)
{
    if (!f.ownsStack)
    {
        f.stackSize = fiberStackSize();
        void* mem = mmap(nullptr, f.stackSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (mem == MAP_FAILED)
        {
            std::fprintf(stderr, "cuda_cpu: cannot map a %zu-byte fiber stack\n", f.stackSize);
            std::abort();
        }
        f.stack = static_cast<char*>(mem);
        f.ownsStack = true;
        // Stacks are 2^k bytes apart, so their hot top lines would all fall into the same cache sets;
        // starting each a different number of lines below the top spreads them over the sets.
        static size_t fibers = 0;
        f.topGap = (fibers++ * 17 * 64) % 65536;
    }
#if CUDACPU_ASAN
    // an abandoned fiber leaves its frames' redzones poisoned on the stack we are about to reuse
    ASAN_UNPOISON_MEMORY_REGION(f.stack, f.stackSize);
#endif
#if CUDACPU_ASM_SWITCH
    uintptr_t top = (reinterpret_cast<uintptr_t>(f.stack) + f.stackSize - f.topGap) & ~uintptr_t(15);
    void** sp = reinterpret_cast<void**>(top - 72); // 6 registers + return address; 16-aligned at the call
    sp[0] = nullptr;                                               // r15
    sp[1] = nullptr;                                               // r14
    sp[2] = reinterpret_cast<void*>(entry);                        // r13
    sp[3] = arg;                                                   // r12
    sp[4] = nullptr;                                               // rbx
    sp[5] = nullptr;                                               // rbp
    sp[6] = reinterpret_cast<void*>(&cudacpu_fiber_start);         // return address
    f.sp = sp;
#else
    auto* uc = static_cast<ucontext_t*>(f.sp);
    if (uc == nullptr)
        f.sp = uc = new ucontext_t;
    getcontext(uc);
    uc->uc_stack.ss_sp = f.stack;
    uc->uc_stack.ss_size = f.stackSize - f.topGap;
    uc->uc_link = nullptr;
    // makecontext passes ints only: split the two pointers into 32-bit halves
    auto const e = reinterpret_cast<uintptr_t>(entry);
    auto const a = reinterpret_cast<uintptr_t>(arg);
    makecontext(uc, reinterpret_cast<void (*)()>(+[](unsigned e0, unsigned e1, unsigned a0, unsigned a1) {
        auto const fn = reinterpret_cast<FiberEntry>((uintptr_t(e1) << 32) | e0);
        fn(reinterpret_cast<void*>((uintptr_t(a1) << 32) | a0));
    }), 4, unsigned(e), unsigned(uint64_t(e) >> 32), unsigned(a), unsigned(uint64_t(a) >> 32));
#endif
}

void fiberAdoptHostThread(Fiber& f)
{
    void* addr = nullptr;
    size_t size = 0;
#if CUDACPU_ASAN
    pthread_attr_t attr;
    if (pthread_getattr_np(pthread_self(), &attr) == 0)
    {
        pthread_attr_getstack(&attr, &addr, &size);
        pthread_attr_destroy(&attr);
    }
#endif
    f.stack = static_cast<char*>(addr);
    f.stackSize = size;
    f.ownsStack = false;
#if !CUDACPU_ASM_SWITCH
    if (f.sp == nullptr)
        f.sp = new ucontext_t;
#endif
}

void fiberSwitch(Fiber& from, Fiber& to, bool fromIsDone)
{
#if CUDACPU_ASAN
    void* fake = nullptr;
    __sanitizer_start_switch_fiber(fromIsDone ? nullptr : &fake, to.stack, to.stackSize);
#else
    (void) fromIsDone;
#endif
#if CUDACPU_ASM_SWITCH
    cudacpu_switch_stack(&from.sp, to.sp);
#else
    swapcontext(static_cast<ucontext_t*>(from.sp), static_cast<ucontext_t*>(to.sp));
#endif
#if CUDACPU_ASAN
    __sanitizer_finish_switch_fiber(fake, nullptr, nullptr);
#endif
}

void fiberStarted()
{
#if CUDACPU_ASAN
    __sanitizer_finish_switch_fiber(nullptr, nullptr, nullptr);
#endif
}

} // namespace detail
} // namespace cudacpu

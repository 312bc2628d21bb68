// Registers c10's FakeGuardImpl as the CUDA device guard on a CPU-only build of torch, so that
// fake CUDA tensors (FakeTensorMode) can be indexed from Python and carry autograd history.
#include <c10/core/impl/DeviceGuardImplInterface.h>
#include <c10/core/impl/FakeGuardImpl.h>

C10_REGISTER_GUARD_IMPL(CUDA, c10::impl::FakeGuardImpl<c10::DeviceType::CUDA>);

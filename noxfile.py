"""nox sessions: tests and benchmarks per backend, and lint.

    nox -s tests-numpy            # one backend; tests-array_api_strict, tests-torch, tests-cupy
    nox -s bench-numpy            # benchmarks beside the peers (torch.nn, JAX); bench-torch, ...
    nox -s bench-gpu              # the GPU rows (CuPy, torch CUDA) on an NVIDIA machine
    nox -s lint
    nox -R -s tests-torch         # -R: reuse the environment, skip reinstalling

A tests session sets XPNET_TEST_BACKENDS so that its backend is *required*: if it cannot be used
(package missing, no CUDA device for CuPy) the tests fail instead of skipping.
"""

import nox

nox.options.sessions = ["tests-numpy", "tests-array_api_strict", "tests-torch", "lint"]
nox.options.default_venv_backend = "venv"

# torch is pinned: 2.13.0 is a CPU wheel; an unpinned torch on Linux pulls a multi-GB CUDA build.
TORCH = "torch==2.13.0"
BACKEND_PACKAGES = {
    "numpy": [],
    "array_api_strict": ["array-api-strict"],
    "torch": [TORCH],
    "cupy": ["cupy-cuda12x"],
}


def _tests(session: nox.Session, backend: str) -> None:
    """Run the test suite with one backend required."""
    session.install("-e", ".[test]", *BACKEND_PACKAGES[backend])
    session.run("python", "-m", "xpnet", "info")
    session.run("pytest", *session.posargs, env={"XPNET_TEST_BACKENDS": backend})


def _bench(session: nox.Session, backend: str) -> None:
    """Benchmark one backend beside its peers and the GEMM-only bound, each in its own process."""
    session.install("-e", ".[cli,bench]", TORCH, *BACKEND_PACKAGES[backend])
    # results go to bench-results/bench-<backend>.{json,md,png}; posargs can override both
    session.run("python", "bench/run.py", "--backend", backend, "--out", "bench-results",
                "--name", f"bench-{backend}", *session.posargs)


def _for_backend(run, backend: str):  # noqa: ANN001, ANN202
    def session(session: nox.Session) -> None:
        run(session, backend)

    session.__doc__ = f"{run.__doc__.rstrip('.')}: {backend}."
    return session


# One named session per backend (tests-numpy, bench-torch, ...): nox.parametrize would name
# them tests(backend='numpy').
for _backend in BACKEND_PACKAGES:
    nox.session(name=f"tests-{_backend}")(_for_backend(_tests, _backend))
    nox.session(name=f"bench-{_backend}")(_for_backend(_bench, _backend))


@nox.session(name="bench-gpu")
def bench_gpu(session: nox.Session) -> None:
    """The GPU rows: xpnet on CuPy and torch CUDA beside torch.nn on CUDA, with GFLOP/s and the
    FP32 floor (exit status 2 where there is no NVIDIA GPU)."""
    # an unpinned torch is a CUDA build on Linux: what a GPU machine needs
    session.install("-e", ".[cli]", "torch", "cupy-cuda12x")
    session.run("python", "bench/run.py", "--gpu", "--out", "bench-results", "--name",
                "bench-gpu", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff over the package, tests and benchmarks."""
    session.install("ruff")
    session.run("ruff", "check", "src", "tests", "bench", "noxfile.py")

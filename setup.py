"""Build of the native kernels (`edgevqa.kernels._native`, sampling; `edgevqa.kernels._deinterlace`;
`edgevqa.kernels._tonemap`, HDR to SDR); everything else is in pyproject.toml.

Portable flags only (-O3, no -march=native), so a wheel built here runs on any x86-64 or aarch64 machine of
the same platform tag. The extension is optional: where no C compiler exists the build still succeeds with
a warning and `edgevqa.kernels` falls back to the NumPy reference (`edgevqa.kernels.IMPLEMENTATION` says
which one is in use); so do `edgevqa.deinterlace` and `edgevqa.tonemap`.
"""

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

UNIX_FLAGS = ["-O3", "-std=gnu11", "-fno-strict-aliasing", "-Wall", "-Wextra", "-Wno-unused-parameter",
              "-Wno-missing-field-initializers"]


class BuildNative(build_ext):
    def build_extensions(self):
        if self.compiler.compiler_type == "unix":
            for ext in self.extensions:
                ext.extra_compile_args = UNIX_FLAGS + list(ext.extra_compile_args or [])
                ext.libraries = list(ext.libraries or []) + ["m"]  # fma() when the LUT checks the hint
        elif self.compiler.compiler_type == "msvc":
            for ext in self.extensions:
                ext.extra_compile_args = ["/O2"] + list(ext.extra_compile_args or [])
        super().build_extensions()


setup(
    ext_modules=[Extension("edgevqa.kernels._native", sources=["kernels/_native.c"], optional=True),
                 Extension("edgevqa.kernels._deinterlace", sources=["kernels/_deinterlace.c"], optional=True),
                 Extension("edgevqa.kernels._tonemap", sources=["kernels/_tonemap.c"], optional=True)],
    cmdclass={"build_ext": BuildNative},
)

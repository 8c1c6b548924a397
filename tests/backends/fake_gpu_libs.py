"""Stand-ins for ``tensorrt`` and cuda-python's runtime module, so the TensorRT code paths run on a CPU box.

They implement only what `edgevqa.backends.tensorrt` calls, with the documented signatures and return
conventions (cuda-python: ``(cudaError_t, value...)`` tuples; TensorRT: ``parse_from_file`` -> bool,
``build_serialized_network`` -> bytes or None, ``execute_async_v3`` -> bool). "Device" memory is host memory
from ctypes, and the "engine" runs the ONNX model it was built from with ONNX Runtime, reading and writing the
tensor addresses it was given, so the runner's staging, copies and bindings are checked for real. The fake
engine infers every output's shape as ``[clips, 1]`` (what the probe models make).
"""

from __future__ import annotations

import ctypes
import enum
import json
import types

import numpy as np


def make_fake_cudart(gpu_name: bytes = b"Fake GPU", capability: tuple[int, int] = (9, 0)):
    allocations: dict[int, ctypes.Array] = {}

    class cudaError_t(enum.IntEnum):
        cudaSuccess = 0
        cudaErrorInvalidValue = 1

    class cudaMemcpyKind(enum.IntEnum):
        cudaMemcpyHostToDevice = 1
        cudaMemcpyDeviceToHost = 2

    def malloc(nbytes):
        buffer = (ctypes.c_uint8 * int(nbytes))()
        address = ctypes.addressof(buffer)
        allocations[address] = buffer
        return cudaError_t.cudaSuccess, address

    def free(address):
        return (cudaError_t.cudaSuccess if allocations.pop(int(address), None) is not None
                else cudaError_t.cudaErrorInvalidValue,)

    def memcpy(dst, src, count, kind, stream):
        ctypes.memmove(int(dst), int(src), int(count))
        return (cudaError_t.cudaSuccess,)

    props = types.SimpleNamespace(name=gpu_name, major=capability[0], minor=capability[1], totalGlobalMem=80 << 30)
    return types.SimpleNamespace(
        cudaError_t=cudaError_t, cudaMemcpyKind=cudaMemcpyKind, allocations=allocations,
        cudaSetDevice=lambda index: (cudaError_t.cudaSuccess,),
        cudaGetDeviceCount=lambda: (cudaError_t.cudaSuccess, 1),
        cudaGetDeviceProperties=lambda index: (cudaError_t.cudaSuccess, props),
        cudaMalloc=malloc, cudaMallocHost=malloc, cudaFree=free, cudaFreeHost=free, cudaMemcpyAsync=memcpy,
        cudaStreamCreate=lambda: (cudaError_t.cudaSuccess, 7),
        cudaStreamSynchronize=lambda stream: (cudaError_t.cudaSuccess,),
        cudaStreamDestroy=lambda stream: (cudaError_t.cudaSuccess,))


def make_fake_tensorrt(version: str = "10.13.3.9"):
    trt = types.ModuleType("tensorrt")
    trt.__version__ = version
    trt.NetworkDefinitionCreationFlag = types.SimpleNamespace(STRONGLY_TYPED=1)
    trt.MemoryPoolType = types.SimpleNamespace(WORKSPACE="workspace")
    trt.DeviceType = types.SimpleNamespace(DLA="dla", GPU="gpu")
    trt.BuilderFlag = types.SimpleNamespace(GPU_FALLBACK="gpu_fallback")
    trt.TensorIOMode = types.SimpleNamespace(INPUT="input", OUTPUT="output")
    trt.DataType = types.SimpleNamespace(FLOAT="float")
    trt.nptype = lambda dtype: {"float": np.float32}[dtype]
    trt.built = []  # (flags, config) of every build, for the tests to inspect

    class ILogger:
        class Severity(enum.Enum):
            INTERNAL_ERROR = 0
            ERROR = 1
            WARNING = 2
            INFO = 3

        def __init__(self):
            pass

    trt.ILogger = ILogger

    class Network:
        def __init__(self, flags):
            self.flags, self.onnx = flags, None

    class OnnxParser:
        def __init__(self, network, logger):
            self.network, self.num_errors = network, 0

        def parse_from_file(self, path):
            with open(path, "rb") as fh:
                self.network.onnx = fh.read()
            return True

        def get_error(self, index):
            return ""

    class TimingCache:
        def __init__(self, data):
            self.data = data

        def serialize(self):
            return self.data + b"+timed"

    class Profile:
        def __init__(self):
            self.shapes = {}

        def set_shape(self, name, lo, opt, hi):
            self.shapes[name] = (tuple(lo), tuple(opt), tuple(hi))

    class Config:
        def __init__(self):
            self.pools, self.profiles, self.flags, self.cache = {}, [], set(), None
            self.default_device_type, self.DLA_core = "gpu", -1

        def set_memory_pool_limit(self, pool, size):
            self.pools[pool] = size

        def add_optimization_profile(self, profile):
            self.profiles.append(profile)

        def set_flag(self, flag):
            self.flags.add(flag)

        def create_timing_cache(self, data):
            return TimingCache(bytes(data))

        def set_timing_cache(self, cache, ignore_mismatch):
            self.cache = cache
            return True

        def get_timing_cache(self):
            return self.cache

    class Builder:
        num_DLA_cores = 0

        def __init__(self, logger):
            pass

        def create_network(self, flags):
            return Network(flags)

        def create_builder_config(self):
            return Config()

        def create_optimization_profile(self):
            return Profile()

        def build_serialized_network(self, network, config):
            trt.built.append((network.flags, config))
            header = json.dumps({name: shapes for p in config.profiles for name, shapes in p.shapes.items()})
            return header.encode() + b"\n" + network.onnx

    class Context:
        def __init__(self, engine):
            self.engine, self.shapes, self.addresses = engine, {}, {}

        def set_input_shape(self, name, shape):
            lo, _, hi = self.engine.profiles[name]
            if not all(a <= s <= b for a, s, b in zip(lo, shape, hi)):
                return False
            self.shapes[name] = tuple(shape)
            return True

        def get_tensor_shape(self, name):
            if name in self.engine.inputs:
                return self.shapes[name]
            return (next(iter(self.shapes.values()))[0], 1)

        def set_tensor_address(self, name, address):
            self.addresses[name] = int(address)

        def execute_async_v3(self, stream):
            def view(name, shape):
                count = int(np.prod(shape))
                raw = (ctypes.c_uint8 * (count * 4)).from_address(self.addresses[name])
                return np.frombuffer(raw, dtype=np.float32, count=count).reshape(shape)

            feed = {n: view(n, self.shapes[n]).copy() for n in self.engine.inputs}
            results = self.engine.session.run(self.engine.outputs, feed)
            for name, value in zip(self.engine.outputs, results):
                view(name, self.get_tensor_shape(name))[...] = value
            return True

    class Engine:
        def __init__(self, blob):
            import onnxruntime

            header, onnx_bytes = blob.split(b"\n", 1)
            self.profiles = {k: tuple(tuple(s) for s in v) for k, v in json.loads(header).items()}
            self.session = onnxruntime.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
            self.inputs = [i.name for i in self.session.get_inputs()]
            self.outputs = [o.name for o in self.session.get_outputs()]
            self.num_io_tensors = len(self.inputs) + len(self.outputs)

        def get_tensor_name(self, index):
            return (self.inputs + self.outputs)[index]

        def get_tensor_mode(self, name):
            return "input" if name in self.inputs else "output"

        def get_tensor_dtype(self, name):
            return "float"

        def get_tensor_shape(self, name):
            if name in self.inputs:
                return (-1,) + self.profiles[name][1][1:]
            return (-1, 1)

        def create_execution_context(self):
            return Context(self)

    class Runtime:
        def __init__(self, logger):
            self.DLA_core = -1

        def deserialize_cuda_engine(self, blob):
            return Engine(blob) if b"\n" in blob else None

    trt.Builder, trt.OnnxParser, trt.Runtime = Builder, OnnxParser, Runtime
    return trt


def install(monkeypatch, trt=None, cudart=None):
    """Put the fakes where ``import tensorrt`` and ``from cuda.bindings import runtime`` find them."""
    trt = trt or make_fake_tensorrt()
    cudart = cudart or make_fake_cudart()
    bindings = types.ModuleType("cuda.bindings")
    bindings.runtime = cudart
    cuda = types.ModuleType("cuda")
    cuda.bindings = bindings
    monkeypatch.setitem(__import__("sys").modules, "tensorrt", trt)
    monkeypatch.setitem(__import__("sys").modules, "cuda", cuda)
    monkeypatch.setitem(__import__("sys").modules, "cuda.bindings", bindings)
    monkeypatch.setitem(__import__("sys").modules, "cuda.bindings.runtime", cudart)
    return trt, cudart

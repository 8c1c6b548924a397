"""Run as a subprocess by test_simplevqa.py: pytorchvideo's own SlowFast-R50 as the reference for ours.

Usage: python pytorchvideo_reference.py OUT.pt [--keys-only]. Writes a torch file with the state dict's key
names and shapes, and (unless --keys-only) a state dict with randomised BatchNorm statistics, an input clip and
the pooled pathway features pytorchvideo computes for it (blocks 0..4, then the mean of each pathway, the way
SimpleVQA uses the network). Exit code 3: pytorchvideo cannot be imported here.

pytorchvideo's model code imports ``torchvision.ops.RoIAlign`` at module level (for a detection head we do not
use); torchvision cannot be installed beside our torch, so a stand-in module is registered when it is missing.
Its ``transforms`` package is never imported. A subprocess keeps the stand-in out of the test process.
"""

import sys
import types


def main() -> int:
    out = sys.argv[1]
    keys_only = "--keys-only" in sys.argv[2:]
    try:
        import torchvision  # noqa: F401
    except ImportError:
        stub, ops = types.ModuleType("torchvision"), types.ModuleType("torchvision.ops")
        ops.RoIAlign = type("RoIAlign", (), {})
        stub.ops = ops
        sys.modules["torchvision"], sys.modules["torchvision.ops"] = stub, ops
    import torch

    try:
        from pytorchvideo.models.slowfast import create_slowfast
    except Exception as exc:  # ImportError, or a dependency failing at import
        print(f"pytorchvideo unavailable: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 3
    torch.manual_seed(0)
    model = create_slowfast(model_num_class=400).eval()
    result = {"keys": [(k, tuple(v.shape)) for k, v in model.state_dict().items()]}
    if not keys_only:
        gen = torch.Generator().manual_seed(1)
        with torch.no_grad():
            for module in model.modules():
                if isinstance(module, torch.nn.BatchNorm3d):
                    n = module.num_features
                    module.running_mean.copy_(torch.randn(n, generator=gen) * 0.1)
                    module.running_var.copy_(torch.rand(n, generator=gen) * 0.5 + 0.75)
                    module.weight.copy_(torch.rand(n, generator=gen) * 0.5 + 0.75)
                    module.bias.copy_(torch.randn(n, generator=gen) * 0.1)
        clip = torch.randn(2, 3, 8, 64, 64, generator=gen)
        # pytorchvideo's PackPathway: the slow pathway takes linspace(0, T-1, T/4) of the frames.
        slow = torch.index_select(clip, 2, torch.linspace(0, clip.shape[2] - 1, clip.shape[2] // 4).long())
        with torch.no_grad():
            x = [slow, clip]
            for block in model.blocks[:5]:
                x = block(x)
            features = torch.cat([x[0].mean(dim=(2, 3, 4)), x[1].mean(dim=(2, 3, 4))], dim=1)
        result.update(state_dict=model.state_dict(), clip=clip, features=features)
    torch.save(result, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

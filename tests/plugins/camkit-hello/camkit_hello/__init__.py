"""A third-party plugin: one CAM method (the centre prior) and one backbone."""
from camkit import hookimpl


class CentrePrior:
    """A map that ignores the image: a bump in the middle of the feature map (a sanity baseline)."""

    name = "hello-centre"
    needs_gradients = False

    def raw_map(self, ctx):
        import torch

        a = ctx.activations
        h, w = a.shape[-2:]
        ys = torch.linspace(-1, 1, h, device=a.device)[:, None]
        xs = torch.linspace(-1, 1, w, device=a.device)[None, :]
        return (1 - (ys**2 + xs**2) / 2).expand(a.shape[0], h, w)


def tiny_net(channels: int = 4):
    """A one-layer convolutional backbone."""
    import torch

    return torch.nn.Conv2d(1, channels, 3, padding=1)


@hookimpl
def register_cams(register):
    register("hello-centre", CentrePrior)


@hookimpl
def register_backbones(register):
    register("hello-net", tiny_net)

import pytest
import torch

from methods.unet import UNet, UNetConfig


@pytest.mark.parametrize("dims, shape", [(2, (2, 3, 16, 24)), (3, (1, 1, 8, 16, 16))])
@pytest.mark.parametrize("batch_norm", [True, False])
def test_unet_keeps_the_shape(dims, shape, batch_norm):
    net = UNet(shape[1], shape[1], dims, UNetConfig(depth=3, base_channels=4, batch_norm=batch_norm))
    assert net(torch.randn(shape)).shape == shape


def test_depth_sets_the_size_multiple():
    net = UNet(1, 1, 2, UNetConfig(depth=4, base_channels=2))
    assert net.cfg.size_multiple == 8
    with pytest.raises(ValueError, match="multiple of 8"):
        net(torch.randn(1, 1, 12, 16))


def test_residual_output_adds_the_input():
    torch.manual_seed(0)
    plain = UNet(1, 1, 2, UNetConfig(depth=2, base_channels=4))
    residual = UNet(1, 1, 2, UNetConfig(depth=2, base_channels=4, residual=True))
    residual.load_state_dict(plain.state_dict())
    x = torch.randn(2, 1, 8, 8)
    plain.eval(), residual.eval()
    torch.testing.assert_close(residual(x), plain(x) + x)


def test_paper_configuration_is_the_official_width():
    cfg = UNetConfig.paper()
    net = UNet(1, 1, 2, cfg)
    widths = [block.conv2.out_channels for block in net.encode]
    assert widths == [96, 192, 384] and cfg.batch_norm


def test_without_batch_norm_the_skip_carries_the_unchanged_input():
    from methods.unet import ResidualBlock

    block = ResidualBlock(3, 3, 2, UNetConfig(batch_norm=False))
    for conv in (block.conv1, block.conv2):
        torch.nn.init.zeros_(conv.weight)
        torch.nn.init.zeros_(conv.bias)
    x = torch.randn(2, 3, 8, 8)
    kept = x.clone()
    torch.testing.assert_close(block(x), kept)  # zero convolutions: the block is the identity
    torch.testing.assert_close(x, kept)          # and the caller's tensor is left alone


@pytest.mark.parametrize("batch_norm", [True, False])
def test_in_place_relus_leave_outputs_and_gradients_unchanged(batch_norm):
    import copy

    torch.manual_seed(0)
    net = UNet(1, 1, 2, UNetConfig(depth=2, base_channels=4, batch_norm=batch_norm))
    reference = copy.deepcopy(net)
    for module in reference.modules():
        if isinstance(module, torch.nn.ReLU):
            module.inplace = False
    x = torch.randn(2, 1, 8, 8)
    outputs = []
    for model in (net, reference):
        out = model(x)
        out.square().sum().backward()
        outputs.append((out, [p.grad for p in model.parameters()]))
    torch.testing.assert_close(outputs[0][0], outputs[1][0], rtol=0, atol=0)
    for a, b in zip(outputs[0][1], outputs[1][1]):
        torch.testing.assert_close(a, b, rtol=0, atol=0)

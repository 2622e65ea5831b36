"""The example CAM meets camkit's contract, checked the way any plugin author would."""
from camkit_noisecam import NoiseCAM

from camkit.testing import check_cam


def test_noise_cam_meets_the_cam_contract():
    check_cam(NoiseCAM())

"""The example CAMs meet camkit's contract, checked the way any plugin author would."""
from camkit_noisecam import NoiseCAM, NoisyGradCAM

from camkit.testing import check_cam


def test_noise_cams_meet_the_cam_contract():
    check_cam(NoiseCAM())
    check_cam(NoisyGradCAM(num_samples=2))  # gradient-reruns: its declared copies are counted, its maps checked

"""The example model meets camkit's contract, checked the way any plugin author would."""
import camkit
from camkit.testing import check_model


def test_tinycnn_meets_the_model_contract():
    check_model(camkit.create_model("tinycnn"))

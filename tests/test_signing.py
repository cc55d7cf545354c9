import random
import string

import pytest

from service.signing import PushVerifier, api_sign, push_signature, verify_push
from tests import signer

KEY = b"test_partner_key_do_not_use"
URL = "https://receiver.example.com/shopee/push"
BODY = (
    b'{"data":{"items":[],"ordersn":"220810QSK8S7BX","status":"PROCESSED","completed_scenario":"",'
    b'"update_time":1660123127},"shop_id":727720655,"code":3,"timestamp":1660123127}'
)
VECTOR = "e2ced245d01b8df53196f4cc0a2c209d9ad59db351c2afd03fa392a9e4981322"


def test_push_signature_matches_spec_vector() -> None:
    assert push_signature(KEY, URL, BODY) == VECTOR


def test_verify_accepts_spec_vector() -> None:
    assert verify_push(KEY, URL, BODY, VECTOR)


def test_verify_rejects_flipped_body_byte() -> None:
    flipped = BODY.replace(b"PROCESSED", b"PROCESSEE")
    assert not verify_push(KEY, URL, flipped, VECTOR)


def test_verify_rejects_other_url() -> None:
    assert not verify_push(KEY, URL + "/", BODY, VECTOR)
    assert not verify_push(KEY, URL.replace("https", "http"), BODY, VECTOR)


def test_verify_rejects_uppercase_truncated_missing_and_other_key() -> None:
    assert not verify_push(KEY, URL, BODY, VECTOR.upper())
    assert not verify_push(KEY, URL, BODY, VECTOR[:-1])
    assert not verify_push(KEY, URL, BODY, None)
    assert not verify_push(KEY, URL, BODY, "")
    assert not verify_push(b"another_key", URL, BODY, VECTOR)


def test_verify_rejects_non_ascii_header() -> None:
    assert not verify_push(KEY, URL, BODY, VECTOR[:-1] + "é")


def test_one_verifier_checks_push_after_push() -> None:
    verify = PushVerifier(KEY, URL)
    flipped = BODY.replace(b"PROCESSED", b"PROCESSEE")
    assert [verify(BODY, VECTOR), verify(flipped, VECTOR), verify(BODY, VECTOR)] == [True, False, True]


def test_api_sign_shop_level_vector() -> None:
    sign = api_sign(
        KEY, 2001887, "/api/v2/order/get_order_detail", 1655714431, "59777174636562737266615546704c6d", 14701711
    )
    assert sign == "1e0c93d973b461f5b5616fe614391840ecb3b2946020bbe4c6f8d8574ab29d75"


def test_api_sign_public_vector() -> None:
    sign = api_sign(KEY, 2001887, "/api/v2/auth/access_token/get", 1655714431)
    assert sign == "5612143359e183e9f2ee2d93c673c4c768576b75a948495402dc04bea9fa6d21"


def test_the_independent_signer_gives_the_contract_vectors() -> None:
    assert signer.push_authorization(KEY.decode(), URL, BODY) == VECTOR
    assert (
        signer.api_signature(
            KEY.decode(),
            2001887,
            "/api/v2/order/get_order_detail",
            1655714431,
            "59777174636562737266615546704c6d",
            "14701711",
        )
        == "1e0c93d973b461f5b5616fe614391840ecb3b2946020bbe4c6f8d8574ab29d75"
    )
    assert (
        signer.api_signature(KEY.decode(), 2001887, "/api/v2/auth/access_token/get", 1655714431)
        == "5612143359e183e9f2ee2d93c673c4c768576b75a948495402dc04bea9fa6d21"
    )


@pytest.mark.parametrize("seed", range(20))
def test_service_signatures_agree_with_the_independent_signer_on_random_input(seed: int) -> None:
    rng = random.Random(seed)
    key = "".join(rng.choice(string.printable) for _ in range(rng.choice([1, 32, 64, 65, 200])))
    body = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 500)))
    url = f"https://gw{seed}.example.com/shopee/push" + "/" * (seed % 2)
    assert push_signature(key.encode(), url, body) == signer.push_authorization(key, url, body)
    assert verify_push(key.encode(), url, body, signer.push_authorization(key, url, body))
    partner, stamp, token, shop = rng.randrange(10**7), rng.randrange(2**31), f"t{rng.random()}", rng.randrange(10**9)
    path = "/api/v2/order/get_order_detail"
    assert api_sign(key.encode(), partner, path, stamp, token, shop) == signer.api_signature(
        key, partner, path, stamp, token, str(shop)
    )
    assert api_sign(key.encode(), partner, path, stamp) == signer.api_signature(key, partner, path, stamp)

"""E-certificate primitives: MOD 37,36, certificate ids, canonical JSON, signatures, QR."""

from __future__ import annotations

import base64
import datetime
import decimal
import enum
import json
import random
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from sharing_service.certificate_ids import (
    CertificateId,
    InvalidCertificateId,
    mod37_36_check_char,
    mod37_36_is_valid,
)
from sharing_service.signing import (
    InvalidQrPayload,
    QrPayload,
    SignedCertificate,
    SigningKey,
    VerificationOutcome,
    VerifyingKey,
    canonical_json,
    parse_qr_payload,
    qr_payload,
    sign_certificate,
    signing_input,
    verify_signature,
)

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"  # GB 32100: no I, O, S, V, Z
ISSUER = "11440300MB2C92735X"  # made up, in the GB 32100 alphabet
ARC = "1.2.156.3005.2"


# ---------------------------------------------------------------------------------------
# An independent MOD 37,36 for cross-checking. python-stdnum is not a dependency, so this is
# written from the ISO 7064 definition in its own shape: the check character is found by
# trying every candidate, and a string is valid when the last sum is 1 mod 36.
# ---------------------------------------------------------------------------------------


def _reference_state(text: str) -> int:
    p = 36
    for char in text:
        s = p + ALPHABET.index(char)
        p = (2 * (s % 36 if s % 36 else 36)) % 37
    return p


def _reference_valid(text: str) -> bool:
    payload, check = text[:-1], text[-1]
    return (_reference_state(payload) + ALPHABET.index(check)) % 36 == 1


def _reference_check_char(payload: str) -> str:
    (check,) = [c for c in ALPHABET if _reference_valid(payload + c)]  # exactly one fits
    return check


def _transposition_escapes(prefix: str, a: str, b: str) -> bool:
    """Whether swapping the adjacent characters ``a`` ``b`` that follow ``prefix`` leaves
    the MOD 37,36 check unchanged: the pair whose sums land on 18 and 19."""
    p = _reference_state(prefix)
    sums = {(p + ALPHABET.index(a)) % 36 or 36, (p + ALPHABET.index(b)) % 36 or 36}
    return sums == {18, 19}


def _random_text(rng: random.Random, length: int) -> str:
    return "".join(rng.choice(ALPHABET) for _ in range(length))


# ---------------------------------------------------------------------------------------
# MOD 37,36
# ---------------------------------------------------------------------------------------

# Published examples: the GRid example (IFPI; also python-stdnum's docstring), two from the
# xbib standardnumber tests, and both check characters of the ISAN example
# 0000-0000-D07A-0090-Q-0000-0000-X (root+episode → Q, root+episode+version → X).
VECTORS = [
    "A12425GABC1234002M",
    "B159D8FA01240000K",
    "188166C7342000003",
    "00000000D07A0090Q",
    "00000000D07A009000000000X",
]


@pytest.mark.parametrize("valid", VECTORS)
def test_published_vectors(valid: str) -> None:
    payload, check = valid[:-1], valid[-1]
    assert mod37_36_check_char(payload) == check
    assert mod37_36_is_valid(valid)
    assert [c for c in ALPHABET if mod37_36_is_valid(payload + c)] == [check]


def test_agrees_with_an_independent_implementation() -> None:
    rng = random.Random(3736)
    for _ in range(3000):
        payload = _random_text(rng, rng.randint(1, 60))
        check = mod37_36_check_char(payload)
        assert check == _reference_check_char(payload), payload
        other = rng.choice(ALPHABET)
        assert mod37_36_is_valid(payload + other) == _reference_valid(payload + other)


def test_agrees_with_python_stdnum() -> None:
    # python-stdnum (a dependency for resident ID numbers): a third-party implementation of
    # the same standard, used here only as an independent cross-check.
    from stdnum.iso7064 import mod_37_36 as reference

    rng = random.Random(7064)
    for _ in range(20_000):
        payload = _random_text(rng, rng.randint(1, 60))
        check = mod37_36_check_char(payload)
        assert check == reference.calc_check_digit(payload), payload
        candidate = payload + rng.choice(ALPHABET)
        assert mod37_36_is_valid(candidate) == reference.is_valid(candidate), candidate


def test_every_single_substitution_is_detected() -> None:
    rng = random.Random(1)
    for _ in range(300):
        text = _random_text(rng, rng.randint(1, 40))
        text += mod37_36_check_char(text)
        for i, old in enumerate(text):
            for new in ALPHABET.replace(old, ""):
                assert not mod37_36_is_valid(text[:i] + new + text[i + 1 :]), (text, i, new)


def test_adjacent_transpositions_escape_only_the_one_known_pair() -> None:
    # ISO 7064 promises "all or nearly all" transpositions for hybrid systems; this pins
    # down exactly which ones MOD 37,36 misses, so the module docstring stays true.
    rng = random.Random(2)
    escaped = 0
    for _ in range(3000):
        text = _random_text(rng, rng.randint(1, 40))
        text += mod37_36_check_char(text)
        for i in range(len(text) - 1):
            a, b = text[i], text[i + 1]
            if a == b:
                continue
            swapped = text[:i] + b + a + text[i + 2 :]
            expected = _transposition_escapes(text[:i], a, b)
            assert mod37_36_is_valid(swapped) == expected, (text, i)
            escaped += expected
    assert escaped > 0  # the case is real, not hypothetical


@pytest.mark.parametrize("payload", ["", "abc", "AB-C", "Ä", "１２"])
def test_check_char_refuses_bad_payloads(payload: str) -> None:
    with pytest.raises(ValueError):
        mod37_36_check_char(payload)


@pytest.mark.parametrize(
    "text", ["", "M", "a12425gabc1234002m", "A12425GABC1234002m", "A12425-GABC1234002M"]
)
def test_is_valid_never_raises(text: str) -> None:
    assert mod37_36_is_valid(text) is False


# ---------------------------------------------------------------------------------------
# Certificate ids
# ---------------------------------------------------------------------------------------


def test_build_str_parse() -> None:
    cid = CertificateId.build(
        type_code="business_license", issuer_code=ISSUER.lower(), serial=42, version=1
    )
    assert cid.type_code == "BUSINESS_LICENSE"
    assert cid.issuer_code == ISSUER
    text = str(cid)
    # The example in the module docstring.
    assert text == f"{ARC}.BUSINESS_LICENSE.{ISSUER}.0000000042.01.8"
    assert cid.check_payload == f"BUSINESSLICENSE{ISSUER}000000004201"
    assert mod37_36_is_valid(cid.check_payload + cid.check_char)
    assert CertificateId.parse(text) == cid


def test_round_trip_extremes() -> None:
    for serial, version in [(1, 1), (9_999_999_999, 99), (1_000_000_000, 10)]:
        cid = CertificateId.build(
            type_code="A1", issuer_code=ISSUER, serial=serial, version=version
        )
        assert CertificateId.parse(str(cid)) == cid
    long_type = "X" + "_Y" * 15 + "Z"  # 32 characters
    cid = CertificateId.build(type_code=long_type, issuer_code=ISSUER, serial=7)
    assert CertificateId.parse(str(cid)).type_code == long_type


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"type_code": "A"}, "证照类型代码"),
        ({"type_code": "A" * 33}, "证照类型代码"),
        ({"type_code": "_AB"}, "证照类型代码"),
        ({"type_code": "AB_"}, "证照类型代码"),
        ({"type_code": "A__B"}, "连续下划线"),
        ({"type_code": "AB-C"}, "证照类型代码"),
        ({"type_code": "营业执照"}, "证照类型代码"),
        # "ß".upper() == "SS": non-ASCII must not be upper-cased into a valid code.
        ({"type_code": "straße"}, "证照类型代码"),
        ({"issuer_code": ISSUER[:-1]}, "颁发机构代码"),
        ({"issuer_code": ISSUER[:-1] + "I"}, "颁发机构代码"),
        ({"issuer_code": ISSUER[:-1] + "O"}, "颁发机构代码"),
        ({"issuer_code": ISSUER[:-1] + "Ｘ"}, "颁发机构代码"),
        ({"serial": 0}, "流水号"),
        ({"serial": -1}, "流水号"),
        ({"serial": 10_000_000_000}, "流水号"),
        ({"serial": True}, "流水号"),
        ({"serial": "1"}, "流水号"),
        ({"version": 0}, "版本号"),
        ({"version": 100}, "版本号"),
        ({"version": 1.0}, "版本号"),
    ],
)
def test_build_refuses_bad_fields(changes: dict[str, Any], reason: str) -> None:
    fields: dict[str, Any] = {
        "type_code": "BUSINESS_LICENSE",
        "issuer_code": ISSUER,
        "serial": 1,
        "version": 1,
    }
    fields.update(changes)
    with pytest.raises(InvalidCertificateId, match="格式不正确") as caught:
        CertificateId.build(**fields)
    assert reason in str(caught.value)


def test_constructor_checks_the_check_char() -> None:
    cid = CertificateId.build(type_code="BUSINESS_LICENSE", issuer_code=ISSUER, serial=42)
    wrong = ALPHABET[(ALPHABET.index(cid.check_char) + 1) % 36]
    with pytest.raises(InvalidCertificateId, match="校验位不正确"):
        CertificateId(
            type_code=cid.type_code,
            issuer_code=cid.issuer_code,
            serial=cid.serial,
            version=cid.version,
            check_char=wrong,
        )


VALID_TEXT = str(CertificateId.build(type_code="BUSINESS_LICENSE", issuer_code=ISSUER, serial=42))


@pytest.mark.parametrize(
    "text",
    [
        "",
        "BUSINESS_LICENSE",
        VALID_TEXT.replace(ARC, "1.2.156.3005.3"),
        VALID_TEXT.replace(ARC + ".", ""),
        VALID_TEXT + ".1",
        VALID_TEXT.rsplit(".", 1)[0],
        VALID_TEXT.lower(),
        VALID_TEXT.replace("BUSINESS_LICENSE", "business_license"),
        VALID_TEXT.replace(".0000000042.", ".42."),
        VALID_TEXT.replace(".0000000042.", ".00000000042."),
        VALID_TEXT.replace(".0000000042.", ".０００００００００42."),
        VALID_TEXT.replace(".01.", ".1."),
        VALID_TEXT.replace(".01.", ".00."),
        " " + VALID_TEXT,
        VALID_TEXT + "\n",
        VALID_TEXT[:-1] + "88",
        VALID_TEXT + "X" * 200,
    ],
)
def test_parse_refuses_malformed_text(text: str) -> None:
    with pytest.raises(InvalidCertificateId, match="格式不正确"):
        CertificateId.parse(text)


def test_parse_refuses_non_text() -> None:
    with pytest.raises(InvalidCertificateId, match="格式不正确"):
        CertificateId.parse(None)  # type: ignore[arg-type]


def test_parse_refuses_wrong_check_char() -> None:
    for wrong in ALPHABET.replace(VALID_TEXT[-1], ""):
        with pytest.raises(InvalidCertificateId, match="校验位不正确"):
            CertificateId.parse(VALID_TEXT[:-1] + wrong)


def _random_type_code(rng: random.Random) -> str:
    length = rng.randint(2, 32)
    chars = [rng.choice(ALPHABET) for _ in range(length)]
    # Underscores only where the syntax allows them: not first or last, never two in a row.
    for i in range(1, length - 1):
        if chars[i - 1] != "_" and rng.random() < 0.2:
            chars[i] = "_"
    return "".join(chars)


def _random_id(rng: random.Random) -> CertificateId:
    return CertificateId.build(
        type_code=_random_type_code(rng),
        issuer_code="".join(rng.choice(USCC_ALPHABET) for _ in range(18)),
        serial=rng.choice([rng.randint(1, 999), rng.randint(1, 9_999_999_999)]),
        version=rng.randint(1, 99),
    )


def _accepted(text: str) -> CertificateId | None:
    try:
        return CertificateId.parse(text)
    except InvalidCertificateId:
        return None


def _type_code_syntax_ok(type_code: str) -> bool:
    try:
        CertificateId.build(type_code=type_code, issuer_code=ISSUER, serial=1)
    except InvalidCertificateId:
        return False
    return True


# Everything that can appear in an id, plus near misses a person or a scanner produces.
SUBSTITUTES = ALPHABET + "_." + "a-" + " ０"


def test_single_substitutions_and_adjacent_transpositions_are_rejected() -> None:
    """Every single-character substitution and adjacent transposition of a valid id text is
    rejected, except the two blind spots the module docstring documents: changes that only
    move, add or drop an '_' of the type code, and the one MOD 37,36 transposition pair."""
    rng = random.Random(20240601)
    blind_spots = {"underscore": 0, "transposition": 0}
    for _ in range(120):
        cid = _random_id(rng)
        text = str(cid)
        type_start = len(ARC) + 1
        type_end = type_start + len(cid.type_code)

        for i, old in enumerate(text):
            for new in SUBSTITUTES.replace(old, ""):
                mutated = text[:i] + new + text[i + 1 :]
                parsed = _accepted(mutated)
                if "_" not in (old, new):
                    assert parsed is None, (text, i, new)
                elif parsed is not None:
                    # Adding or dropping an '_' changes the protected payload by one
                    # insertion or deletion, which MOD 37,36 catches only most of the time.
                    assert type_start <= i < type_end, (text, i, new)
                    assert mod37_36_is_valid(parsed.check_payload + parsed.check_char)
                    blind_spots["underscore"] += 1

        for i in range(len(text) - 1):
            a, b = text[i], text[i + 1]
            if a == b:
                continue
            mutated = text[:i] + b + a + text[i + 2 :]
            parsed = _accepted(mutated)
            if "." in (a, b):
                # Fixed-width fields: a shifted separator always breaks the format.
                assert parsed is None, (text, i)
            elif "_" in (a, b):
                # A moved '_' leaves the payload as it was: accepted iff still good syntax.
                new_type = mutated[type_start:type_end]
                assert (parsed is not None) == _type_code_syntax_ok(new_type), (text, i)
                blind_spots["underscore"] += parsed is not None
            elif i < type_start:
                assert parsed is None, (text, i)  # inside the OID arc
            else:
                payload_before = text[type_start:i].replace(".", "").replace("_", "")
                expected = _transposition_escapes(payload_before, a, b)
                assert (parsed is not None) == expected, (text, i)
                blind_spots["transposition"] += expected
    # The exceptions were exercised, so the assertions above are not vacuous about them.
    assert blind_spots["underscore"] > 0


def test_moving_an_underscore_is_outside_the_check() -> None:
    # Documented limitation: the check character cannot see where '_' sits.
    original = CertificateId.build(type_code="AB_CD", issuer_code=ISSUER, serial=5)
    moved = CertificateId.parse(str(original).replace(".AB_CD.", ".A_BCD."))
    assert moved.type_code == "A_BCD"
    assert moved.check_char == original.check_char


def test_a_transposition_the_check_misses() -> None:
    # Documented limitation (ISO 7064 hybrid systems): find an id where swapping two
    # adjacent serial digits gives another valid id, and show parse accepts it.
    for serial in range(1, 10_000):
        cid = CertificateId.build(type_code="BUSINESS_LICENSE", issuer_code=ISSUER, serial=serial)
        digits = f"{serial:010d}"
        for i in range(9):
            if digits[i] == digits[i + 1]:
                continue
            swapped = digits[:i] + digits[i + 1] + digits[i] + digits[i + 2 :]
            text = str(cid).replace(f".{digits}.", f".{swapped}.")
            if (other := _accepted(text)) is not None:
                assert other.serial == int(swapped) != cid.serial
                assert abs(int(digits[i]) - int(digits[i + 1])) == 1  # consecutive values
                return
    pytest.fail("no escaping transposition found; the docstring's claim would be wrong")


# ---------------------------------------------------------------------------------------
# Canonical JSON
# ---------------------------------------------------------------------------------------


def test_canonical_json_bytes() -> None:
    document = {"b": 1, "a": {"d": [1, "二", None, True, False], "c": 'x\n"y"'}, "": -5}
    assert canonical_json(document) == (
        '{"":-5,"a":{"c":"x\\n\\"y\\"","d":[1,"二",null,true,false]},"b":1}'.encode()
    )


def test_canonical_json_ignores_key_order() -> None:
    rng = random.Random(9)
    document = {
        "id": "x",
        "holder": {"name": "张三", "kind": "person", "tags": ["b", "a"]},
        "fields": {f"field_{n}": n for n in range(30)},
    }
    expected = canonical_json(document)

    def shuffled(value: Any) -> Any:
        if isinstance(value, dict):
            items = list(value.items())
            rng.shuffle(items)
            return {key: shuffled(item) for key, item in items}
        return value

    for _ in range(20):
        assert canonical_json(shuffled(document)) == expected
    # Lists keep their order: it is data.
    assert canonical_json({"tags": ["a", "b"]}) != canonical_json({"tags": ["b", "a"]})


def test_canonical_json_orders_keys_like_rfc_8785() -> None:
    # RFC 8785 §3.2.3: keys sort by UTF-16 code units, so the emoji (a surrogate pair,
    # 0xD83D…) comes before U+FB33 although its code point is larger.
    keys = ["\u20ac", "\r", "\ufb33", "1", "\U0001f600", "\u0080", "\u00f6"]
    text = canonical_json(dict.fromkeys(keys, 0)).decode()
    assert list(json.loads(text)) == [
        "\r",
        "1",
        "\u0080",
        "\u00f6",
        "\u20ac",
        "\U0001f600",
        "\ufb33",
    ]


@pytest.mark.parametrize(
    "value", [1.5, 2.0, float("nan"), float("inf"), float("-inf"), [1, [2.5]], {"a": {"b": 0.1}}]
)
def test_canonical_json_refuses_floats(value: Any) -> None:
    with pytest.raises(TypeError, match="float"):
        canonical_json({"amount": value})


@pytest.mark.parametrize(
    "value",
    [b"bytes", {1, 2}, datetime.date(2024, 1, 1), decimal.Decimal("1.5"), object(), {1: "a"}],
)
def test_canonical_json_refuses_other_types(value: Any) -> None:
    with pytest.raises(TypeError):
        canonical_json({"x": value})


def test_canonical_json_integer_and_text_limits() -> None:
    assert canonical_json({"n": 2**53 - 1, "m": -(2**53 - 1)}) == (
        b'{"m":-9007199254740991,"n":9007199254740991}'
    )
    for too_big in (2**53, -(2**53)):
        with pytest.raises(ValueError, match="2\\*\\*53"):
            canonical_json({"n": too_big})
    with pytest.raises(ValueError, match="surrogate"):
        canonical_json({"s": "\ud800"})
    with pytest.raises(TypeError):
        canonical_json(["not", "an", "object"])  # type: ignore[arg-type]


def test_canonical_json_reads_enums_and_tuples_as_their_values() -> None:
    class Kind(enum.StrEnum):
        PERSON = "person"

    class Level(enum.IntEnum):
        HIGH = 3

    assert canonical_json({"k": Kind.PERSON, "l": Level.HIGH, "t": (1, 2)}) == canonical_json(
        {"k": "person", "l": 3, "t": [1, 2]}
    )


# ---------------------------------------------------------------------------------------
# Keys, signatures
# ---------------------------------------------------------------------------------------


CERT_ID = str(CertificateId.build(type_code="BUSINESS_LICENSE", issuer_code=ISSUER, serial=42))


def certificate(**changes: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "id": CERT_ID,
        "type": "BUSINESS_LICENSE",
        "holder": {"kind": "company", "name": "东莞市示例科技有限公司"},
        "fields": {"registered_capital": "1000000.00", "established_on": "2020-05-01"},
        "issuer": {"code": ISSUER, "name": "东莞市市场监督管理局"},
        "validity": {"from": "2024-01-01", "until": None},
    }
    document.update(changes)
    return document


@pytest.fixture(scope="module")
def key() -> SigningKey:
    return SigningKey.generate(kid="gd-2024")


@pytest.fixture(scope="module")
def keys(key: SigningKey) -> dict[str, VerifyingKey]:
    return {key.kid: key.public_key()}


def test_sign_and_verify(key: SigningKey, keys: dict[str, VerifyingKey]) -> None:
    signed = sign_certificate(certificate(), key=key)
    assert signed.kid == "gd-2024"
    assert len(signed.signature) == 86 and "=" not in signed.signature
    result = verify_signature(signed, keys=keys)
    assert result.outcome is VerificationOutcome.VALID
    assert result.valid and result.kid == "gd-2024"
    assert result.outcome == "valid"


def test_signature_covers_context_kid_and_document(key: SigningKey) -> None:
    signed = sign_certificate(certificate(), key=key)
    message = signing_input(certificate(), kid=key.kid)
    assert json.loads(message) == {
        "context": "wangban.certificate.v1",
        "document": certificate(),
        "kid": "gd-2024",
    }
    # Checked with the cryptography package directly, as a partner would.
    public = Ed25519PublicKey.from_public_bytes(key.public_key().raw)
    public.verify(base64.urlsafe_b64decode(signed.signature + "=="), message)


@pytest.mark.parametrize(
    "tamper",
    [
        lambda d: d["fields"].update(registered_capital="9000000.00"),
        lambda d: d["holder"].update(name="东莞市另一家科技有限公司"),
        lambda d: d["validity"].update(until="2099-12-31"),
        lambda d: d.update(extra="added"),
        lambda d: d.pop("issuer"),
        lambda d: d.update(type="business_license"),
    ],
)
def test_changed_document_fails(
    key: SigningKey, keys: dict[str, VerifyingKey], tamper: Any
) -> None:
    signed = sign_certificate(certificate(), key=key)
    document = json.loads(json.dumps(signed.document))
    tamper(document)
    forged = SignedCertificate(document=document, kid=signed.kid, signature=signed.signature)
    assert verify_signature(forged, keys=keys).outcome is VerificationOutcome.BAD_SIGNATURE


def test_wrong_key_and_unknown_key(key: SigningKey, keys: dict[str, VerifyingKey]) -> None:
    impostor = SigningKey.generate(kid=key.kid)  # same kid, other key material
    signed = sign_certificate(certificate(), key=impostor)
    assert verify_signature(signed, keys=keys).outcome is VerificationOutcome.BAD_SIGNATURE

    stranger = SigningKey.generate(kid="unknown-2024")
    signed = sign_certificate(certificate(), key=stranger)
    result = verify_signature(signed, keys=keys)
    assert result.outcome is VerificationOutcome.UNKNOWN_KEY and not result.valid
    assert verify_signature(signed, keys={}).outcome is VerificationOutcome.UNKNOWN_KEY


def test_kid_cannot_be_relabelled(key: SigningKey) -> None:
    # The same key material listed under two ids (say, an old id kept after a rotation that
    # reused the key): without the kid in the signed bytes, a relabel would still verify.
    public = key.public_key()
    keys = {"gd-2024": public, "gd-2025": VerifyingKey(kid="gd-2025", raw=public.raw)}
    signed = sign_certificate(certificate(), key=key)
    assert verify_signature(signed, keys=keys).valid
    relabelled = SignedCertificate(
        document=signed.document, kid="gd-2025", signature=signed.signature
    )
    assert verify_signature(relabelled, keys=keys).outcome is VerificationOutcome.BAD_SIGNATURE

    other = SigningKey.generate(kid="other")
    keys["other"] = other.public_key()
    relabelled = SignedCertificate(
        document=signed.document, kid="other", signature=signed.signature
    )
    assert verify_signature(relabelled, keys=keys).outcome is VerificationOutcome.BAD_SIGNATURE


def test_key_filed_under_another_id_is_not_used(key: SigningKey) -> None:
    signed = sign_certificate(certificate(), key=key)
    misfiled = {key.kid: VerifyingKey(kid="elsewhere", raw=key.public_key().raw)}
    assert verify_signature(signed, keys=misfiled).outcome is VerificationOutcome.UNKNOWN_KEY


B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def _non_canonical(text: str) -> str:
    """The same bytes spelt differently: the last character of unpadded base64 has unused
    low bits (4 for a signature, 2 for a public key), which canonical text leaves at 0."""
    return text[:-1] + B64URL[B64URL.index(text[-1]) | 1]


def _flip_bit(signature: str) -> str:
    raw = bytearray(base64.urlsafe_b64decode(signature + "=="))
    raw[10] ^= 0x01
    return base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()


@pytest.mark.parametrize(
    "mangle",
    [
        lambda s: "",
        lambda s: "not a signature",
        lambda s: s + "==",
        lambda s: s[:-1],
        lambda s: s + "A",
        lambda s: "+" + s[1:],  # standard base64, not base64url
        lambda s: s[:-1] + "/",
        _non_canonical,
        _flip_bit,
        lambda s: None,
        lambda s: s.encode(),
    ],
)
def test_malformed_signature_is_bad_signature(
    key: SigningKey, keys: dict[str, VerifyingKey], mangle: Any
) -> None:
    signed = sign_certificate(certificate(), key=key)
    broken = SignedCertificate(
        document=signed.document, kid=signed.kid, signature=mangle(signed.signature)
    )
    assert verify_signature(broken, keys=keys).outcome is VerificationOutcome.BAD_SIGNATURE


def test_verify_never_raises_on_odd_documents(
    key: SigningKey, keys: dict[str, VerifyingKey]
) -> None:
    signed = sign_certificate(certificate(), key=key)
    documents: list[Any] = [certificate(amount=1.5), {1: "x"}, {"big": 2**60}, {"s": "\udfff"}]
    for document in documents:
        odd = SignedCertificate(document=document, kid=signed.kid, signature=signed.signature)
        assert verify_signature(odd, keys=keys).outcome is VerificationOutcome.BAD_SIGNATURE
    odd_kid = SignedCertificate(document=signed.document, kid=None, signature=signed.signature)  # type: ignore[arg-type]
    assert verify_signature(odd_kid, keys=keys).outcome is VerificationOutcome.UNKNOWN_KEY


def test_signed_document_is_a_copy(key: SigningKey, keys: dict[str, VerifyingKey]) -> None:
    document = certificate()
    signed = sign_certificate(document, key=key)
    document["fields"]["registered_capital"] = "1.00"
    assert verify_signature(signed, keys=keys).valid
    assert signed.document["fields"]["registered_capital"] == "1000000.00"


def test_sign_refuses_bad_documents(key: SigningKey) -> None:
    document = certificate()
    del document["id"]
    with pytest.raises(ValueError, match="'id'"):
        sign_certificate(document, key=key)
    with pytest.raises(InvalidCertificateId, match="校验位不正确"):
        sign_certificate(
            certificate(id=CERT_ID[:-1] + ("0" if CERT_ID[-1] != "0" else "1")), key=key
        )
    with pytest.raises(TypeError, match="float"):
        sign_certificate(certificate(fields={"area": 12.5}), key=key)
    with pytest.raises(TypeError):
        sign_certificate([("id", CERT_ID)], key=key)  # type: ignore[arg-type]


def test_private_key_round_trip(key: SigningKey, keys: dict[str, VerifyingKey]) -> None:
    raw = key.private_bytes()
    assert len(raw) == 32
    restored = SigningKey.from_private_bytes(raw, kid=key.kid)
    assert restored.public_key() == key.public_key()
    assert verify_signature(sign_certificate(certificate(), key=restored), keys=keys).valid
    # Key material never shows up in a repr (logs, tracebacks).
    assert repr(key) == "SigningKey(kid='gd-2024')"
    for spelling in (
        raw.hex(),
        base64.b64encode(raw).decode(),
        base64.urlsafe_b64encode(raw).decode(),
    ):
        assert spelling[:16] not in repr(key)


def test_public_key_b64_round_trip(key: SigningKey) -> None:
    public = key.public_key()
    text = public.to_b64()
    assert len(text) == 43 and "=" not in text
    assert VerifyingKey.from_b64(text, kid=public.kid) == public
    for bad in ("", text + "=", text[:-1], text + "AAAA", "!" + text[1:], _non_canonical(text)):
        with pytest.raises(ValueError, match="base64url"):
            VerifyingKey.from_b64(bad, kid=public.kid)


@pytest.mark.parametrize("kid", ["", "a" * 33, "a:b", "a.b", "密钥", "a b"])
def test_key_ids_are_checked(kid: str) -> None:
    with pytest.raises(ValueError, match="key id"):
        SigningKey.generate(kid=kid)
    with pytest.raises(ValueError, match="key id"):
        VerifyingKey(kid=kid, raw=bytes(32))


def test_key_lengths_are_checked() -> None:
    with pytest.raises(ValueError, match="32"):
        SigningKey.from_private_bytes(bytes(31), kid="k")
    with pytest.raises(ValueError, match="32"):
        VerifyingKey(kid="k", raw=bytes(33))


# ---------------------------------------------------------------------------------------
# QR payload
# ---------------------------------------------------------------------------------------


def test_qr_round_trip_and_verifier_flow(key: SigningKey, keys: dict[str, VerifyingKey]) -> None:
    signed = sign_certificate(certificate(), key=key)
    text = qr_payload(signed)
    assert text == f"WBCERT:1:{CERT_ID}:gd-2024:{signed.signature}"
    assert "东莞" not in text  # no certificate content in the code

    scanned = parse_qr_payload(text + "\r\n")  # scanners often add a line break
    assert scanned == QrPayload(
        certificate_id=CertificateId.parse(CERT_ID), kid="gd-2024", signature=signed.signature
    )
    assert str(scanned) == text

    # The verifier's side: look the certificate up by id, compare, verify.
    store = {signed.document["id"]: signed}
    stored = store[str(scanned.certificate_id)]
    assert scanned.matches(stored)
    assert verify_signature(stored, keys=keys).valid


def test_qr_does_not_match_another_certificate(key: SigningKey) -> None:
    signed = sign_certificate(certificate(), key=key)
    scanned = parse_qr_payload(qr_payload(signed))
    reissued = sign_certificate(
        certificate(validity={"from": "2025-01-01", "until": None}), key=key
    )
    assert not scanned.matches(reissued)  # same id, other signature
    other_id = str(CertificateId.build(type_code="BUSINESS_LICENSE", issuer_code=ISSUER, serial=43))
    assert not scanned.matches(sign_certificate(certificate(id=other_id), key=key))


def test_qr_payload_length_bound() -> None:
    longest = CertificateId.build(
        type_code="X" * 32, issuer_code=ISSUER, serial=9_999_999_999, version=99
    )
    signing_key = SigningKey.generate(kid="k" * 32)
    text = qr_payload(sign_certificate(certificate(id=str(longest)), key=signing_key))
    assert len(text) < 300
    assert parse_qr_payload(text).certificate_id == longest


def _qr_with(**parts: str) -> str:
    fields = {"prefix": "WBCERT", "version": "1", "id": CERT_ID, "kid": "gd-2024", "sig": "A" * 86}
    fields.update(parts)
    return ":".join(fields.values())


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "不是本平台的电子证照二维码"),
        ("https://example.com/", "不是本平台的电子证照二维码"),
        (_qr_with(prefix="wbcert"), "不是本平台的电子证照二维码"),
        (_qr_with(prefix="WBCERT2"), "不是本平台的电子证照二维码"),
        (_qr_with() + ":extra", "不是本平台的电子证照二维码"),
        (_qr_with().rsplit(":", 1)[0], "不是本平台的电子证照二维码"),
        (_qr_with() + "A" * 600, "不是本平台的电子证照二维码"),
        (_qr_with(version="2"), "版本不受支持"),
        (_qr_with(id=CERT_ID[:-1] + ("0" if CERT_ID[-1] != "0" else "1")), "证照标识校验位不正确"),
        (_qr_with(id="1.2.156.3005.2.X"), "证照标识格式不正确"),
        (_qr_with(kid=""), "密钥标识格式不正确"),
        (_qr_with(kid="k y"), "密钥标识格式不正确"),
        (_qr_with(sig="A" * 85), "签名格式不正确"),
        (_qr_with(sig="A" * 86 + "=="), "签名格式不正确"),
        (_qr_with(sig="A" * 85 + "B"), "签名格式不正确"),  # non-canonical last character
        (_qr_with(sig="+" * 86), "签名格式不正确"),
    ],
)
def test_malformed_qr_is_refused(text: str, message: str) -> None:
    with pytest.raises(InvalidQrPayload, match=message):
        parse_qr_payload(text)


def test_qr_payload_refuses_a_broken_signed_certificate(key: SigningKey) -> None:
    signed = sign_certificate(certificate(), key=key)
    with pytest.raises(ValueError):
        qr_payload(SignedCertificate(document=signed.document, kid=signed.kid, signature="x"))
    with pytest.raises(ValueError):
        qr_payload(SignedCertificate(document={}, kid=signed.kid, signature=signed.signature))
    with pytest.raises(InvalidQrPayload):
        parse_qr_payload(None)  # type: ignore[arg-type]

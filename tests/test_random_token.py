"""random_token: cryptographic API credentials, every character of TOKEN_CHARS reachable."""
from collections import Counter

from perpsim.sim.exchange import TOKEN_CHARS, random_token


def test_length_and_alphabet() -> None:
    for n in (0, 1, 7, 64, 128):
        token = random_token(n)
        assert len(token) == n
        assert set(token) <= set(TOKEN_CHARS)


def test_tokens_differ_and_cover_the_alphabet() -> None:
    tokens = [random_token(64) for _ in range(2000)]
    assert len(set(tokens)) == len(tokens)
    counts = Counter("".join(tokens))
    assert set(counts) == set(TOKEN_CHARS)
    # 128,000 draws over 62 characters: ≈ 2,065 each; a biased map (e.g. b % 62 over all 256
    # byte values) would give the first 8 characters ≈ 2,500 and the rest ≈ 2,000.
    assert max(counts.values()) < 2400
    assert min(counts.values()) > 1750

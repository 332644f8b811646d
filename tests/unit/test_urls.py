"""What an http(s) address must be (outdial.urls): one rule for the CLI and webhooks."""

import pytest

from outdial.urls import ascii_host, host_problem, parse_http_url


@pytest.mark.parametrize(("url", "host"), [
    # IDNA 2008, as the Host header carries it; Python's codec (IDNA 2003) says fass.de.
    ("https://faß.de/hook", "xn--fa-hia.de"),
    ("https://βόλος.com/", "xn--nxasmm1c.com"),
    ("http://Example.COM./x", "example.com."),
    ("http://[2606:4700::1111]:8443/", "2606:4700::1111"),
    ("http://under_score.example/", "under_score.example"),
])
def test_a_host_is_looked_up_and_named_to_tls_in_its_ascii_form(url: str, host: str) -> None:
    assert ascii_host(parse_http_url(url)) == host


@pytest.mark.parametrize(("host", "said"), [
    ("a..b", "label ''"), (".a", "label ''"), ("a" * 64 + ".com", "not 1 to 63"),
    ("-a.com", "label '-a'"), ("exa%20mple.com", "label 'exa%20mple'"),
    ("abcdefghi." * 26 + "com", "at most 253"),
])
def test_a_host_no_resolver_can_look_up_is_named(host: str, said: str) -> None:
    problem = host_problem(host)
    assert problem is not None and said in problem, problem


def test_an_invalid_a_label_is_a_value_error_not_a_crash() -> None:
    with pytest.raises(ValueError, match="A-label"):
        parse_http_url("http://xn--zz.com/")

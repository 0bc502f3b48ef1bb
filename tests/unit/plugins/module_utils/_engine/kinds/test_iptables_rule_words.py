"""Declared rules iptables would not take as written are refused as input, naming the field: words
that make iptables(-restore) print its help or version, or skip the rule, and text it cannot read."""

from __future__ import annotations

import pytest

from ansible_collections.linuxnet.netns.plugins.module_utils._engine.errors import NetnsError
from ansible_collections.linuxnet.netns.plugins.module_utils._engine.kinds.iptables_rules import rule_words


@pytest.mark.parametrize("rule", [
    "-h", "-V", "--help", "--he", "--h", "--version", "--vers", "-vh", "-nV", "-hx", "-j ACCEPT -h",
    "-p tcp -m tcp --help", "-p tcp --dport 22 -j ACCEPT -V", "--help=x",
    {"jump": "ACCEPT", "match": ["-h"]},
])
def test_words_that_make_iptables_print_help_or_its_version_are_refused(rule: object) -> None:
    with pytest.raises(NetnsError, match="help|version"):
        rule_words(rule, "ipv4", "r")


@pytest.mark.parametrize("rule,version", [("-6 -j ACCEPT", "ipv4"), ("--ipv6 -j ACCEPT", "ipv4"),
                                          ("-4 -j ACCEPT", "ipv6"), ("-v4 -j ACCEPT", "ipv6")])
def test_the_other_familys_flag_which_makes_iptables_skip_the_rule_is_refused(rule: str, version: str) -> None:
    with pytest.raises(NetnsError, match="skip"):
        rule_words(rule, version, "r")


@pytest.mark.parametrize("rule", [
    {"comment": "two\nlines", "jump": "ACCEPT"}, {"comment": "a\rb", "jump": "ACCEPT"},
    {"comment": "nul\x00", "jump": "ACCEPT"}, {"comment": "\udcff", "jump": "ACCEPT"},
    "-m comment --comment 'a\nb' -j ACCEPT",
])
def test_words_iptables_restore_cannot_read_are_refused(rule: object) -> None:
    with pytest.raises(NetnsError, match="line break|NUL|UTF-8"):
        rule_words(rule, "ipv4", "r")


@pytest.mark.parametrize("rule", [
    "-m comment --comment -h -j ACCEPT", "-m comment --comment --help -j ACCEPT", {"comment": "-V", "jump": "ACCEPT"},
    "-ph -j ACCEPT", "-4 -j ACCEPT", "-p tcp -m multiport --dports 22,80 -j ACCEPT", "--hex-string x",
    "-j LOG --log-prefix -h",
])
def test_such_words_as_an_options_argument_are_fine(rule: object) -> None:
    assert rule_words(rule, "ipv4", "r")

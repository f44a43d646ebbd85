"""A small tokenizer shared by the mip6d.conf and keys file parsers.

Like UMIP's scan.l (and setkey's token.l) it knows whitespace, `#` comments to the end of
the line, double-quoted strings that may not span lines, and single-character punctuation.
Everything else is a *word*, a run of the characters that the caller allows; the parsers
decide what a word means (keyword, number, address, ...), which gives error messages
that name what was expected.
"""

from __future__ import annotations

import re
from enum import Enum
from typing import NamedTuple

from .errors import ConfigError, Location


class Kind(Enum):
    WORD = "word"
    STRING = "string"  # the value is the text between the quotes
    PUNCT = "punct"
    EOF = "eof"


class Token(NamedTuple):
    kind: Kind
    value: str
    location: Location
    length: int = 0  # characters in the source, quotes included

    @property
    def end(self) -> Location:
        """The position just after this token."""
        return Location(self.location.file, self.location.line, self.location.column + self.length)

    def describe(self) -> str:
        """How an error message names this token."""
        if self.kind is Kind.EOF:
            return "end of file"
        if self.kind is Kind.STRING:
            return f'"{self.value}"'
        return f"'{self.value}'"

    def is_punct(self, char: str) -> bool:
        return self.kind is Kind.PUNCT and self.value == char

    def is_word(self, *words: str) -> bool:
        return self.kind is Kind.WORD and (not words or self.value in words)


def tokenize(text: str, filename: str, word_chars: str, punct: str) -> list[Token]:
    """Split `text` into tokens, ending with one EOF token.

    `word_chars` is a regex character-class body (e.g. `A-Za-z0-9_:.`); `punct` lists the
    characters returned as single-character PUNCT tokens. Any other character is an error.
    """
    # one regex, alternatives in order of precedence: a home agent's config and keys
    # file hold a few lines per mobile node, tens of thousands of lines in all
    scanner = re.compile(r'(?P<newline>\n)|[ \t\r\f\v]+|#[^\n]*|"(?P<string>[^"\n]*)"'
                         rf"|(?P<punct>[{re.escape(punct)}])|(?P<word>[{word_chars}]+)")
    tokens: list[Token] = []
    line, line_start, pos = 1, 0, 0
    for match in scanner.finditer(text):
        if match.start() != pos:  # finditer skipped what no alternative matches
            break
        kind, pos = match.lastgroup, match.end()
        if kind == "newline":
            line, line_start = line + 1, pos
        elif kind is not None:
            here = Location(filename, line, match.start() - line_start + 1)
            tokens.append(Token(_KINDS[kind], match.group(kind), here, pos - match.start()))
    if pos < len(text):
        here = Location(filename, line, pos - line_start + 1)
        char = text[pos]
        if char == '"':
            raise ConfigError(here, "unterminated string: a quoted string must end on the same line")
        shown = repr(char) if char.isprintable() else f"U+{ord(char):04X}"
        raise ConfigError(here, f"unexpected character {shown}")
    tokens.append(Token(Kind.EOF, "", Location(filename, line, pos - line_start + 1)))
    return tokens


_KINDS = {"string": Kind.STRING, "punct": Kind.PUNCT, "word": Kind.WORD}


class TokenStream:
    """A cursor over a token list with the expect/accept helpers both parsers use."""

    def __init__(self, tokens: list[Token]) -> None:
        self._tokens = tokens
        self._pos = 0

    def peek(self, ahead: int = 0) -> Token:
        index = self._pos + ahead
        return self._tokens[index] if index < len(self._tokens) else self._tokens[-1]

    def next(self) -> Token:
        token = self.peek()
        if token.kind is not Kind.EOF:
            self._pos += 1
        return token

    def previous(self) -> Token | None:
        return self._tokens[self._pos - 1] if self._pos else None

    def accept_punct(self, char: str) -> Token | None:
        if self.peek().is_punct(char):
            return self.next()
        return None

    def expect_punct(self, char: str, context: str) -> Token:
        token = self.peek()
        if not token.is_punct(char):
            # a missing terminator is reported where it belongs: after the last token of
            # the statement, not at the start of the next line
            last = self.previous()
            where = last.end if last and last.location.line < token.location.line else token.location
            raise ConfigError(where, f"expected '{char}' {context}, found {token.describe()}")
        return self.next()

    def at_eof(self) -> bool:
        return self.peek().kind is Kind.EOF

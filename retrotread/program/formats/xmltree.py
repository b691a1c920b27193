"""A small XML tree with line numbers, read with the standard library's expat parser.

ElementTree forgets where elements stand; errors must name the line. Document type
declarations are refused outright, so no entity can expand (the "billion laughs") and no
external entity is ever fetched — what defusedxml does, without another dependency.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from xml.parsers import expat

from retrotread.program.loader import ProgramError, ProgramIssue

MAX_DEPTH = 16  # workout files nest three or four deep


@dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    line: int
    children: list[Element] = field(default_factory=list)
    text: str = ""

    def child(self, tag: str) -> Element | None:
        """The first child named ``tag`` (case-insensitive, as the apps read them)."""
        for element in self.children:
            if element.tag.lower() == tag.lower():
                return element
        return None

    def child_text(self, tag: str) -> str | None:
        element = self.child(tag)
        return element.text.strip() if element is not None else None


class _Refused(Exception):
    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


def parse_xml(raw: bytes, source: str) -> Element:
    parser = expat.ParserCreate()
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    stack: list[Element] = []
    roots: list[Element] = []

    def start(tag: str, attrs: dict[str, str]) -> None:
        element = Element(tag, dict(attrs), parser.CurrentLineNumber)
        if stack:
            stack[-1].children.append(element)
        else:
            roots.append(element)
        stack.append(element)
        if len(stack) > MAX_DEPTH:
            raise _Refused(element.line, f"elements nest deeper than {MAX_DEPTH} levels")

    def end(tag: str) -> None:
        stack.pop()

    def text(data: str) -> None:
        if stack:
            stack[-1].text += data

    def refuse_doctype(*_: object) -> None:
        raise _Refused(
            parser.CurrentLineNumber,
            "has a document type declaration (<!DOCTYPE>); workout files need none and "
            "retrotread does not read them",
        )

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = text
    parser.StartDoctypeDeclHandler = refuse_doctype
    parser.EntityDeclHandler = refuse_doctype
    try:
        parser.Parse(raw, True)
    except _Refused as err:
        raise ProgramError(source, [ProgramIssue(err.line, err.message)]) from err
    except expat.ExpatError as err:
        reason = expat.errors.messages.get(err.code, "malformed") if err.code else "malformed"
        raise ProgramError(source, [ProgramIssue(err.lineno, f"not valid XML: {reason}")]) from err
    except (LookupError, ValueError) as err:  # an encoding expat does not know, and the like
        line = parser.CurrentLineNumber or None
        raise ProgramError(source, [ProgramIssue(line, f"not valid XML: {err}")]) from err
    if not roots:
        raise ProgramError(source, [ProgramIssue(None, "not valid XML: no element")])
    return roots[0]

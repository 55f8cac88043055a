"""Untrusted XML, read one safe way: defusedxml's SAX parser with DTDs, entities and external
references refused, every problem fatal, and one :class:`~ssafuse.errors.FormatError` for
each kind of failure (shared by the OMM, TDM and CDM readers)."""

from __future__ import annotations

import xml.sax
import xml.sax.handler

from defusedxml.common import DefusedXmlException, DTDForbidden
from defusedxml.expatreader import DefusedExpatParser

from ..errors import FormatError

#: Everything parsing untrusted XML may raise besides FormatError; :func:`xml_format_error`
#: turns each into a FormatError. (LookupError: an XML declaration naming an unknown encoding.)
XML_ERRORS = (xml.sax.SAXException, DefusedXmlException, ValueError, LookupError,
              RecursionError)


def safe_sax_parser(handler) -> DefusedExpatParser:
    """A SAX parser for untrusted XML (defusedxml): DTDs, entities and external references
    refused outright; ``handler`` (a ContentHandler and ErrorHandler) gets the events."""
    parser = DefusedExpatParser(forbid_dtd=True, forbid_entities=True, forbid_external=True)
    parser.setContentHandler(handler)
    parser.setErrorHandler(handler)
    return parser


class StrictSaxErrors(xml.sax.handler.ErrorHandler):
    """Every SAX problem is fatal (the default handler prints warnings and goes on)."""

    def error(self, exception):
        raise exception

    def fatalError(self, exception):
        raise exception

    def warning(self, exception):
        raise exception


def xml_format_error(error: Exception, uri: str) -> FormatError:
    """The :class:`FormatError` for one of :data:`XML_ERRORS` raised while parsing ``uri``."""
    if isinstance(error, xml.sax.SAXParseException):
        return FormatError(f"XML is not well formed: {error.getMessage()} at line "
                           f"{error.getLineNumber()}, column {error.getColumnNumber()}",
                           path=uri, line=error.getLineNumber())
    if isinstance(error, DTDForbidden):
        return FormatError("XML with a document type declaration (<!DOCTYPE ...>) refused: "
                           "DTDs and entities are never processed in untrusted input",
                           path=uri, got=str(error)[:200])
    if isinstance(error, DefusedXmlException):
        return FormatError(f"XML refused, it declares or references entities: {error}",
                           path=uri)
    return FormatError(f"XML could not be read: {error}", path=uri)

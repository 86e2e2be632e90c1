"""SSL certificates and SSL terminations (stunnel in front of an HTTP-mode Layer 7 service).

Certificates are checked for their shape only: PEM blocks as the appliance writes them, a
known source, and a private key that looks like a Fernet token. Whether the key matches the
certificate, the chain is in order, the CSR's signature holds and the key decrypts under this
appliance's key file are cryptographic checks, made on import by lbadmin.services.certificates
(they need the node's key); they are not this package's.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import ConfigDict, Field, model_validator

from lbadmin.document.base import DocumentModel, Rules, items_of, report_repeated_labels
from lbadmin.document.fields import (
    DEFAULT_CERTIFICATE_LABEL,
    CertificateLabel,
    CertificatePem,
    CertificateSource,
    ChainPem,
    CipherList,
    CsrPem,
    FernetToken,
    Label,
    Lax,
    Port,
)
from lbadmin.render.snapshot import SslMode


class Certificate(DocumentModel):
    """An SSL certificate with its chain and its private key (encrypted, never in clear)."""

    label: CertificateLabel
    source: Annotated[CertificateSource, Lax]
    certificate_pem: CertificatePem = ""
    chain_pem: ChainPem = ""
    csr_pem: CsrPem = ""
    key_encrypted: FernetToken

    @staticmethod
    def _check(rules: Rules, certificate: Certificate | None, data: Any) -> None:
        if certificate is None or certificate.certificate_pem:
            return
        # Only a CSR made here waits for its certificate; the key is checked against it when
        # the signed one comes.
        if certificate.source is not CertificateSource.CSR:
            rules.add(("certificate_pem",), "is required: only a CSR (source csr) waits for one")
        elif not certificate.csr_pem:
            rules.add(("csr_pem",), "is required while the CSR waits for its certificate")
        if certificate.chain_pem:
            rules.add(("chain_pem",), "must be empty while there is no certificate")


def _label_may_be_left_out(schema: dict[str, Any]) -> None:
    schema["required"].remove("label")  # _default_label names it


class Termination(DocumentModel):
    """An SSL termination: TLS on its Layer 7 service's address and its own port, handed to
    that service decrypted."""

    model_config = ConfigDict(json_schema_extra=_label_may_be_left_out)

    label: Label = Field(description="left out: SSL-<virtual_service>, as the WebUI names it")
    virtual_service: Label = Field(description="the label of an HTTP-mode Layer 7 service")
    port: Port
    mode: Annotated[SslMode, Lax] = SslMode.HIGH_SECURITY
    ciphers: CipherList = ""
    certificate: CertificateLabel = Field(
        DEFAULT_CERTIFICATE_LABEL, description="the label of a certificate (not a pending CSR)"
    )

    @model_validator(mode="before")
    @classmethod
    def _default_label(cls, data: Any) -> Any:
        if isinstance(data, dict) and "label" not in data:
            service = data.get("virtual_service")
            if isinstance(service, str):
                return {**data, "label": f"SSL-{service}"}
        return data

    @staticmethod
    def _check(rules: Rules, termination: Termination | None, data: Any) -> None:
        if termination is None:
            return
        if termination.mode is SslMode.CUSTOM and not termination.ciphers:
            rules.add(("ciphers",), "is required in custom mode")
        elif termination.mode is not SslMode.CUSTOM and termination.ciphers:
            rules.add(("ciphers",), "must be empty: only custom mode takes a cipher list")


class Ssl(DocumentModel):
    """The certificates and the terminations that use them (labels unique in each list)."""

    certificates: list[Certificate] = []
    terminations: list[Termination] = []

    @staticmethod
    def _check(rules: Rules, ssl: Ssl | None, data: Any) -> None:
        certificates, every_one = items_of(ssl, data, ("certificates",), Certificate)
        terminations, _ = items_of(ssl, data, ("terminations",), Termination)
        report_repeated_labels(rules, ("certificates",), certificates)
        report_repeated_labels(rules, ("terminations",), terminations)
        if not every_one:
            return  # a reference to an invalid certificate is not known to be wrong
        by_label = {item.label: item for _, item in certificates}
        for index, termination in terminations:
            certificate = by_label.get(termination.certificate)
            if certificate is None:
                message = f"no certificate is labelled “{termination.certificate}”"
            elif not certificate.certificate_pem:
                message = f"“{certificate.label}” is a CSR still waiting for its certificate"
            else:
                continue
            rules.add(("terminations", index, "certificate"), message, termination.certificate)

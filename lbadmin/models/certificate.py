"""SSL certificates and SSL terminations (Cluster Configuration > SSL Certificate / SSL
Termination)."""

from django.db import models

from lbadmin.render.snapshot import SslMode


class SslCertificate(models.Model):
    class Source(models.TextChoices):
        UPLOAD = "upload", "Uploaded PEM/PFX"
        CSR = "csr", "Created on the appliance (CSR)"
        SELF_SIGNED = "self_signed", "Self signed"

    label = models.CharField(max_length=64, unique=True)
    source = models.CharField(max_length=16, choices=Source.choices)
    # Empty while a CSR waits for its signed certificate.
    certificate_pem = models.TextField(blank=True)
    chain_pem = models.TextField(blank=True)
    csr_pem = models.TextField(blank=True)
    # The private key, encrypted with a key kept outside the database (see services/secrets).
    key_encrypted = models.BinaryField()
    subject = models.CharField(max_length=500, blank=True)
    common_name = models.CharField(max_length=255, blank=True)
    sans = models.JSONField(default=list, blank=True)
    issuer = models.CharField(max_length=500, blank=True)
    not_before = models.DateTimeField(null=True, blank=True)
    not_after = models.DateTimeField(null=True, blank=True)
    fingerprint_sha256 = models.CharField(max_length=95, blank=True)
    key_type = models.CharField(max_length=32, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["label"]

    def __str__(self) -> str:
        return self.label

    @property
    def pending_csr(self) -> bool:
        return not self.certificate_pem


class SslTermination(models.Model):
    """Cluster Configuration > SSL Termination: stunnel decrypts on the associated Layer 7
    service's address and the given port, and hands the connection to that service."""

    label = models.CharField(max_length=64, unique=True)
    # PROTECT: a service or certificate in use is never deleted from under a termination.
    virtual_service = models.ForeignKey(
        "lbadmin.VirtualService",
        on_delete=models.PROTECT,
        related_name="ssl_terminations",
        verbose_name="Associated Virtual Service",
    )
    port = models.PositiveIntegerField("Virtual Service Port")
    mode = models.CharField(
        "SSL Operation Mode",
        max_length=16,
        choices=[
            (SslMode.HIGH_SECURITY, "High Security"),
            (SslMode.COMPATIBILITY, "Compatibility"),
            (SslMode.CUSTOM, "Custom"),
        ],
        default=SslMode.HIGH_SECURITY,
    )
    ciphers = models.CharField("Custom cipher list", max_length=1024, blank=True)
    certificate = models.ForeignKey(
        SslCertificate,
        on_delete=models.PROTECT,
        related_name="terminations",
        verbose_name="SSL Certificate",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["label"]

    def __str__(self) -> str:
        return self.label

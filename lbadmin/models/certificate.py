"""SSL certificates (Cluster Configuration > SSL Certificate)."""

from django.db import models


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

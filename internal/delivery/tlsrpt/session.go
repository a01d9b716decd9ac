package tlsrpt

import "time"

// PolicyType is the kind of policy a session was held to (RFC 8460 §4.4).
type PolicyType string

// The policy types.
const (
	STS           PolicyType = "sts"
	TLSA          PolicyType = "tlsa"
	NoPolicyFound PolicyType = "no-policy-found"
)

// Result types of failed sessions (RFC 8460 §4.3).
const (
	StartTLSNotSupported    = "starttls-not-supported"
	CertificateHostMismatch = "certificate-host-mismatch"
	CertificateExpired      = "certificate-expired"
	CertificateNotTrusted   = "certificate-not-trusted"
	ValidationFailure       = "validation-failure"
	TLSAInvalid             = "tlsa-invalid"
	DNSSECInvalid           = "dnssec-invalid"
	DANERequired            = "dane-required"
	STSPolicyFetchError     = "sts-policy-fetch-error"
	STSPolicyInvalid        = "sts-policy-invalid"
	STSWebPKIInvalid        = "sts-webpki-invalid"
)

// Session is the TLS outcome of one connection attempt (or one policy
// fetch) for a recipient domain with a policy.
type Session struct {
	Domain  string     // the policy domain: the recipient domain
	Type    PolicyType //
	Policy  []string   // policy-string: the policy's lines, or TLSA records
	MXHosts []string   // mx-host: the MTA-STS policy's mx patterns
	Success bool
	// For failures:
	ResultType  string
	SendingIP   string
	ReceivingMX string
	ReceivingIP string
	Reason      string // failure-reason-code: short free text
	At          time.Time
}

// Recorder takes session outcomes; the Aggregator is one.
type Recorder interface {
	Record(Session)
}

package attest

import (
	"crypto/x509"
	"fmt"

	"github.com/google/go-sev-guest/abi"
	"github.com/google/go-sev-guest/kds"
	spb "github.com/google/go-sev-guest/proto/sevsnp"
)

// decodedClaims is an SNPClaims with the TCB the endorsement key
// certificate is issued for.
type decodedClaims struct {
	*SNPClaims
	endorsedTCB uint64
}

// newClaims copies the fields of a verified report into SNPClaims.
func newClaims(report *spb.Report, key SigningKey, cert *x509.Certificate) (decodedClaims, error) {
	signer := abi.VcekReportSigner
	if key == VLEK {
		signer = abi.VlekReportSigner
	}
	exts, err := kds.CertificateExtensions(cert, signer)
	if err != nil {
		return decodedClaims{}, fmt.Errorf("%w: reading the %s certificate's extensions: %v", ErrInvalidEvidence, key, err)
	}
	product, err := productLine(report, key, exts)
	if err != nil {
		return decodedClaims{}, err
	}
	c, err := claimsFromReport(report, key, product)
	if err != nil {
		return decodedClaims{}, err
	}
	return decodedClaims{SNPClaims: c, endorsedTCB: uint64(exts.TCBVersion)}, nil
}

// claimsFromReport copies the fields of a verified report into SNPClaims
// and decodes its TCBs with the layout of the product line.
func claimsFromReport(report *spb.Report, key SigningKey, product string) (*SNPClaims, error) {
	policy, err := abi.ParseSnpPolicy(report.GetPolicy())
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidEvidence, err)
	}

	c := &SNPClaims{
		Version:    report.GetVersion(),
		Product:    product,
		SigningKey: key,
		Policy: Policy{
			Raw:            report.GetPolicy(),
			ABIMajor:       policy.ABIMajor,
			ABIMinor:       policy.ABIMinor,
			SMT:            policy.SMT,
			MigrationAgent: policy.MigrateMA,
			Debug:          policy.Debug,
			SingleSocket:   policy.SingleSocket,
		},
		GuestSVN: report.GetGuestSvn(),
		VMPL:     report.GetVmpl(),
	}
	copy(c.Measurement[:], report.GetMeasurement())
	copy(c.HostData[:], report.GetHostData())
	copy(c.ReportData[:], report.GetReportData())
	copy(c.ChipID[:], report.GetChipId())

	tcbs := []struct {
		dst *TCB
		raw uint64
	}{
		{&c.ReportedTCB, report.GetReportedTcb()},
		{&c.CommittedTCB, report.GetCommittedTcb()},
		{&c.CurrentTCB, report.GetCurrentTcb()},
		{&c.LaunchTCB, report.GetLaunchTcb()},
	}
	for _, t := range tcbs {
		if *t.dst, err = DecodeTCB(product, t.raw); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrInvalidEvidence, err)
		}
	}
	return c, nil
}

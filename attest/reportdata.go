package attest

import (
	"crypto/sha512"
	"crypto/subtle"
	"errors"
	"fmt"

	"cove.dev/cove/internal/canonjson"
)

// ErrRuntimeDataMismatch is wrapped by [CheckReportData] when REPORT_DATA
// does not bind the runtime-data.
var ErrRuntimeDataMismatch = errors.New("REPORT_DATA does not match the runtime-data")

// ReportData returns the REPORT_DATA that binds runtimeData to an SNP
// report, as the KBS protocol defines it: the SHA-384 digest of the
// canonical JSON of runtimeData (compact, object keys sorted, see
// cove.dev/cove/internal/canonjson), followed by 16 zero bytes.
func ReportData(runtimeData any) ([64]byte, error) {
	var out [64]byte
	canonical, err := canonjson.Marshal(runtimeData)
	if err != nil {
		return out, fmt.Errorf("serializing runtime-data as canonical JSON: %w", err)
	}
	digest := sha512.Sum384(canonical)
	copy(out[:], digest[:])
	return out, nil
}

// CheckReportData compares all 64 bytes of reportData with the binding of
// runtimeData and returns an error wrapping [ErrRuntimeDataMismatch] when
// they differ.
func CheckReportData(reportData [64]byte, runtimeData any) error {
	want, err := ReportData(runtimeData)
	if err != nil {
		return err
	}
	if subtle.ConstantTimeCompare(reportData[:], want[:]) != 1 {
		return fmt.Errorf("%w: report has %x, runtime-data binds %x", ErrRuntimeDataMismatch, reportData, want)
	}
	return nil
}

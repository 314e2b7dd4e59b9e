package attest

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"testing"

	"cove.dev/cove/internal/canonjson"
)

// runtimeDataCase is case B22: KBS runtime-data, its canonical JSON, the
// REPORT_DATA that binds it, and REPORT_DATA values that other bindings
// produce.
type runtimeDataCase struct {
	RuntimeData   map[string]any    `json:"runtime-data"`
	Canonical     string            `json:"canonical_json_utf8"`
	WrongVariants map[string]string `json:"wrong_variants"`
	// ReportData is read separately: its key contains a comma, which a
	// struct tag cannot express.
	ReportData string `json:"-"`
}

const reportDataKey = "expected_report_data_hex(SHA-384 of canonical JSON, zero-padded to 64)"

func loadRuntimeDataCase(t *testing.T) runtimeDataCase {
	t.Helper()
	data := readTestdata(t, "B22-runtime-data-binding.json")
	var c runtimeDataCase
	if err := json.Unmarshal(data, &c); err != nil {
		t.Fatal(err)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(data, &fields); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(fields[reportDataKey], &c.ReportData); err != nil {
		t.Fatalf("B22 has no %q: %v", reportDataKey, err)
	}
	if len(c.WrongVariants) != 4 {
		t.Fatalf("B22 lists %d wrong variants, expected 4", len(c.WrongVariants))
	}
	return c
}

func decodeReportData(t *testing.T, s string) [64]byte {
	t.Helper()
	var out [64]byte
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != 64 {
		t.Fatalf("REPORT_DATA %q is not 64 bytes of hex", s)
	}
	copy(out[:], b)
	return out
}

func TestRuntimeDataCanonicalBytes(t *testing.T) {
	c := loadRuntimeDataCase(t)
	got, err := canonjson.Marshal(c.RuntimeData)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != c.Canonical {
		t.Errorf("canonical runtime-data =\n%s\nexpected\n%s", got, c.Canonical)
	}
}

func TestReportDataBindsRuntimeData(t *testing.T) {
	c := loadRuntimeDataCase(t)
	got, err := ReportData(c.RuntimeData)
	if err != nil {
		t.Fatal(err)
	}
	if want := decodeReportData(t, c.ReportData); got != want {
		t.Errorf("ReportData = %x, expected %x", got, want)
	}
	if err := CheckReportData(got, c.RuntimeData); err != nil {
		t.Errorf("CheckReportData(expected binding) = %v, expected nil", err)
	}
}

func TestReportDataVectorFromKBSFacts(t *testing.T) {
	runtimeData := map[string]any{"b": 1, "a": "test", "c": map[string]any{"d": "e"}}
	got, err := ReportData(runtimeData)
	if err != nil {
		t.Fatal(err)
	}
	want := decodeReportData(t, "e71ce8e70d814ba6639c3612ebee0ff1f76f650f8dbb5e47157e0f3f525cd22c"+
		"4597480a186427c813ca941da78870c3"+"00000000000000000000000000000000")
	if got != want {
		t.Errorf("ReportData = %x, expected %x", got, want)
	}
}

func TestReportDataWrongVariantsRejected(t *testing.T) {
	c := loadRuntimeDataCase(t)
	want := decodeReportData(t, c.ReportData)
	for name, variant := range c.WrongVariants {
		t.Run(name, func(t *testing.T) {
			reportData := decodeReportData(t, variant)

			err := CheckReportData(reportData, c.RuntimeData)
			if !errors.Is(err, ErrRuntimeDataMismatch) {
				t.Errorf("CheckReportData = %v, expected ErrRuntimeDataMismatch", err)
			}

			claims := &SNPClaims{Measurement: [48]byte{1}, HostData: [32]byte{2}, ReportData: reportData}
			ref := ReferenceValues{Measurements: [][48]byte{{1}}, HostData: [32]byte{2}, ReportData: want}
			checkFailedRules(t, CheckSNP(claims, ref), "report_data")
		})
	}
}

func TestReportDataDiffersInLastByte(t *testing.T) {
	c := loadRuntimeDataCase(t)
	reportData := decodeReportData(t, c.ReportData)
	reportData[63] = 1
	if err := CheckReportData(reportData, c.RuntimeData); !errors.Is(err, ErrRuntimeDataMismatch) {
		t.Errorf("CheckReportData(last padding byte set) = %v, expected ErrRuntimeDataMismatch", err)
	}
}

package attest

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestEvidenceJSONRoundTrip(t *testing.T) {
	ev := b05Evidence(t)
	data, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	var raw struct {
		Report    string            `json:"report"`
		CertChain map[string]string `json:"cert_chain"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		t.Fatal(err)
	}
	if raw.Report != base64.StdEncoding.EncodeToString(ev.Report) {
		t.Error("report is not the standard base64 of the raw report")
	}
	for _, key := range []string{"vcek", "ask", "ark"} {
		if raw.CertChain[key] == "" {
			t.Errorf("cert_chain.%s is missing", key)
		}
	}
	if _, ok := raw.CertChain["vlek"]; ok {
		t.Error("cert_chain.vlek is present for a VCEK chain")
	}

	parsed, err := ParseSNPEvidence(data)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(parsed.Report, ev.Report) || !bytes.Equal(parsed.CertChain.VCEK, ev.CertChain.VCEK) ||
		!bytes.Equal(parsed.CertChain.ASK, ev.CertChain.ASK) || !bytes.Equal(parsed.CertChain.ARK, ev.CertChain.ARK) {
		t.Error("parsed evidence differs from the encoded evidence")
	}
}

func TestParseEvidenceRejectsMalformed(t *testing.T) {
	report := base64.StdEncoding.EncodeToString(make([]byte, ReportSize))
	short := base64.StdEncoding.EncodeToString(make([]byte, ReportSize-1))
	cert := base64.StdEncoding.EncodeToString([]byte{0x30})
	huge := base64.StdEncoding.EncodeToString(make([]byte, MaxCertificateSize+1))
	cases := []struct {
		name, json, want string
	}{
		{"short report", `{"report":"` + short + `","cert_chain":{"vcek":"` + cert + `"}}`, "report is 1183 bytes, expected 1184"},
		{"no endorsement key", `{"report":"` + report + `","cert_chain":{"ask":"` + cert + `"}}`, "neither a vcek nor a vlek"},
		{"unknown field", `{"report":"` + report + `","cert_chain":{"vcek_cert":"` + cert + `"}}`, "unknown field"},
		{"not base64", `{"report":"!!","cert_chain":{"vcek":"` + cert + `"}}`, "illegal base64"},
		{"oversized certificate", `{"report":"` + report + `","cert_chain":{"vcek":"` + huge + `"}}`, "cert_chain.vcek is 16385 bytes"},
		{"trailing data", `{"report":"` + report + `","cert_chain":{"vcek":"` + cert + `"}} {}`, "invalid"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseSNPEvidence([]byte(c.json))
			if !errors.Is(err, ErrInvalidEvidence) {
				t.Fatalf("ParseSNPEvidence = %v, expected ErrInvalidEvidence", err)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q does not contain %q", err, c.want)
			}
		})
	}
}

func TestParseEvidenceRejectsOversizedJSON(t *testing.T) {
	_, err := ParseSNPEvidence(make([]byte, MaxEvidenceJSONSize+1))
	if !errors.Is(err, ErrInvalidEvidence) {
		t.Fatalf("ParseSNPEvidence(oversized) = %v, expected ErrInvalidEvidence", err)
	}
}

func TestMarshalEvidenceRejectsShortReport(t *testing.T) {
	ev := &SNPEvidence{Report: []byte{1}, CertChain: CertChain{VCEK: []byte{0x30}}}
	if _, err := json.Marshal(ev); !errors.Is(err, ErrInvalidEvidence) {
		t.Errorf("json.Marshal(short report) = %v, expected ErrInvalidEvidence", err)
	}
}

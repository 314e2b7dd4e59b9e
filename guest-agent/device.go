package agent

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/google/go-sev-guest/abi"

	"cove.dev/cove/internal/channel"
)

// SimSNPDevice reaches Cove's software SEV-SNP device through the
// virtio-serial port the launcher serves. It replaces /dev/sev-guest on
// development VMs. Its reports are signed by a test-only root, which a
// broker accepts only when configured to.
type SimSNPDevice struct {
	Port io.ReadWriter
}

// Evidence sends REPORT_DATA to the device and returns the evidence it
// signs, with the report's HOST_DATA.
func (d *SimSNPDevice) Evidence(reportData [64]byte) (json.RawMessage, [32]byte, error) {
	var hostData [32]byte
	if err := channel.WriteFrame(d.Port, reportData[:]); err != nil {
		return nil, hostData, fmt.Errorf("sim-snp device: %w", err)
	}
	ev, err := channel.ReadFrame(d.Port)
	if err != nil {
		return nil, hostData, fmt.Errorf("sim-snp device: %w", err)
	}
	var parsed struct {
		Report []byte `json:"report"`
		Error  string `json:"error"`
	}
	if err := json.Unmarshal(ev, &parsed); err != nil {
		return nil, hostData, fmt.Errorf("sim-snp device returned invalid evidence: %w", err)
	}
	if parsed.Error != "" {
		return nil, hostData, fmt.Errorf("sim-snp device: %s", parsed.Error)
	}
	report, err := abi.ReportToProto(parsed.Report)
	if err != nil {
		return nil, hostData, fmt.Errorf("sim-snp device returned an invalid report: %w", err)
	}
	copy(hostData[:], report.GetHostData())
	return ev, hostData, nil
}

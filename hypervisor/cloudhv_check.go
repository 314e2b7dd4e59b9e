package hypervisor

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
)

// ParseHostData decodes SEV-SNP host data written as 64 hex characters
// into its 32 bytes. It rejects any other length, non-hex characters and
// all-zero host data, which binds no job digest.
func ParseHostData(s string) ([]byte, error) {
	if len(s) != 2*HostDataSize {
		return nil, fmt.Errorf("invalid host data %q: %d characters, want %d hex characters", s, len(s), 2*HostDataSize)
	}
	data, err := hex.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("invalid host data %q: %w", s, err)
	}
	if bytes.Equal(data, make([]byte, HostDataSize)) {
		return nil, fmt.Errorf("invalid host data: all zero, which binds no job digest")
	}
	return data, nil
}

// CheckCloudHypervisorCreateBody applies Cove's own rules to a vm.create
// body before it goes to Cloud Hypervisor, which checks less: host_data
// needs platform.sev_snp, and must be 64 hex characters that are not all
// zero. [CloudHypervisorClient.CreateVM] calls it.
func CheckCloudHypervisorCreateBody(body []byte) error {
	var cfg struct {
		Payload struct {
			HostData *string `json:"host_data"`
		} `json:"payload"`
		Platform *struct {
			SevSnp bool `json:"sev_snp"`
		} `json:"platform"`
	}
	if err := json.Unmarshal(body, &cfg); err != nil {
		return fmt.Errorf("invalid vm.create body: %w", err)
	}
	if cfg.Payload.HostData == nil {
		return nil
	}
	if cfg.Platform == nil || !cfg.Platform.SevSnp {
		return fmt.Errorf("invalid vm.create body: payload.host_data is set without platform.sev_snp, and Cloud Hypervisor would ignore it")
	}
	if _, err := ParseHostData(*cfg.Payload.HostData); err != nil {
		return fmt.Errorf("invalid vm.create body: payload.host_data: %w", err)
	}
	return nil
}

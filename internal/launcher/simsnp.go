package launcher

import (
	"encoding/json"
	"fmt"

	"cove.dev/cove/attest/simsnp"
)

// simDevice adapts the sim-snp device to the launcher's Device.
type simDevice struct {
	dev *simsnp.Device
}

func (d *simDevice) Evidence(reportData [64]byte) (json.RawMessage, error) {
	ev, err := d.dev.Report(reportData)
	if err != nil {
		return nil, err
	}
	return json.Marshal(ev)
}

// NewSimSNPDevice returns the software SEV-SNP device for the plan's
// launch: its reports carry the plan's measurement and job digest, signed
// by the TEST-ONLY chain kept in dir (created there on first use).
func NewSimSNPDevice(dir string, p *Plan) (Device, error) {
	chain, err := simsnp.LoadOrCreateChain(dir)
	if err != nil {
		return nil, fmt.Errorf("sim-snp key chain in %s: %w", dir, err)
	}
	dev, err := simsnp.NewDevice(chain, simsnp.LaunchParams{Measurement: p.Measurement, HostData: p.Digest})
	if err != nil {
		return nil, err
	}
	return &simDevice{dev: dev}, nil
}

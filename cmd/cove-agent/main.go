// Command cove-agent is Cove's guest agent. It runs as init (PID 1) in
// the initramfs Cove builds: it prepares the guest, reads the job manifest
// from the launcher, attests to the key broker, runs the job and powers
// the VM off. See package cove.dev/cove/guest-agent.
package main

import (
	"context"
	"fmt"
	"os"
	"time"

	agent "cove.dev/cove/guest-agent"
	"cove.dev/cove/internal/channel"
)

func main() {
	err := run()
	if err != nil {
		fmt.Fprintf(os.Stderr, "cove-agent: %v\n", err)
	}
	if os.Getpid() == 1 {
		agent.PowerOff()
		select {}
	}
	if err != nil {
		os.Exit(1)
	}
}

func run() error {
	if os.Getpid() == 1 {
		if err := agent.PrepareInit(); err != nil {
			return err
		}
	}
	ctl, err := agent.OpenPort(channel.PortControl, 30*time.Second)
	if err != nil {
		return err
	}
	defer ctl.Close()
	var m channel.Manifest
	if err := channel.ReadJSON(ctl, &m); err != nil {
		return fmt.Errorf("read the job manifest: %w", err)
	}
	tr, err := runJob(m, ctl)
	if tr != nil {
		if werr := channel.WriteJSON(ctl, channel.Message{Transcript: tr}); werr != nil && err == nil {
			err = werr
		}
		if !tr.OK && err == nil {
			err = fmt.Errorf("job failed: %s", tr.Error)
		}
	}
	return err
}

func runJob(m channel.Manifest, ctl *os.File) (*channel.Transcript, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	snp, err := agent.OpenPort(channel.PortSNP, 5*time.Second)
	if err != nil {
		return nil, fmt.Errorf("no attestation device: %w", err)
	}
	defer snp.Close()
	in, err := agent.OpenPort(channel.PortInput, 5*time.Second)
	if err != nil {
		return nil, err
	}
	defer in.Close()
	out, err := agent.OpenPort(channel.PortOutput, 5*time.Second)
	if err != nil {
		return nil, err
	}
	defer out.Close()
	broker, err := newBroker(m.KBSURL, m.KBSCACert)
	if err != nil {
		return nil, err
	}
	// Close erases the ephemeral key the data keys were encrypted to.
	defer broker.c.Close()
	job := &agent.Job{
		Manifest: m,
		Device:   &agent.SimSNPDevice{Port: snp},
		Broker:   broker,
		Input:    in,
		Output:   out,
		Events: func(event string) {
			channel.WriteJSON(ctl, channel.Message{Event: event})
		},
	}
	tr := agent.Run(ctx, job)
	if tr.OK {
		out.Sync()
	}
	return tr, nil
}

package main

import (
	"context"
	"encoding/json"

	"cove.dev/cove/kbs/client"
)

// kbsBroker adapts the KBS client to the agent's Broker.
type kbsBroker struct {
	c *client.Client
}

func newBroker(url string, caPEM []byte) (*kbsBroker, error) {
	c, err := client.New(url, client.Options{CACertPEM: caPEM})
	if err != nil {
		return nil, err
	}
	return &kbsBroker{c: c}, nil
}

func (b *kbsBroker) Attest(ctx context.Context, evidence func([64]byte) (json.RawMessage, error)) (string, error) {
	if err := b.c.Attest(ctx, evidence); err != nil {
		return "", err
	}
	return b.c.Token(), nil
}

func (b *kbsBroker) Resource(ctx context.Context, path string) ([]byte, error) {
	return b.c.Resource(ctx, path)
}

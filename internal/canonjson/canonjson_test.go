package canonjson

import (
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"testing"
)

func TestMarshalSortsKeysCompactly(t *testing.T) {
	var v any
	if err := json.Unmarshal([]byte(`{"b": 1, "a": "test", "c": {"d": "e"}}`), &v); err != nil {
		t.Fatal(err)
	}
	got, err := Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"a":"test","b":1,"c":{"d":"e"}}`
	if string(got) != want {
		t.Fatalf("Marshal = %s, want %s", got, want)
	}
	sum := sha512.Sum384(got)
	const wantSum = "e71ce8e70d814ba6639c3612ebee0ff1f76f650f8dbb5e47157e0f3f525cd22c4597480a186427c813ca941da78870c3"
	if hex.EncodeToString(sum[:]) != wantSum {
		t.Fatalf("SHA-384 = %x, want %s", sum, wantSum)
	}
}

func TestMarshalEscapes(t *testing.T) {
	tests := []struct {
		in   any
		want string
	}{
		{map[string]any{"k": "<&>"}, `{"k":"<&>"}`},
		{map[string]any{"k": "a\"b\\c\n\x01"}, `{"k":"a\"b\\c\n\u0001"}`},
		{map[string]any{"é": 1, "z": 2, "a": []any{true, nil}}, `{"a":[true,null],"z":2,"é":1}`},
		{struct {
			B int    `json:"b"`
			A string `json:"a"`
		}{2, "x"}, `{"a":"x","b":2}`},
	}
	for _, tt := range tests {
		got, err := Marshal(tt.in)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != tt.want {
			t.Errorf("Marshal(%v) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

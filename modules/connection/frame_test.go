package connection

import (
	"bytes"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestTextFrame(t *testing.T) {
	tests := []struct {
		name string
		give int // payload length
		want int // header length: 2, 2+2 or 2+8 bytes
	}{
		{name: "empty", give: 0, want: 2},
		{name: "largest 7-bit length", give: 125, want: 2},
		{name: "smallest 16-bit length", give: 126, want: 4},
		{name: "largest 16-bit length", give: 65535, want: 4},
		{name: "smallest 64-bit length", give: 65536, want: 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			payload := bytes.Repeat([]byte{'x'}, tt.give)

			frame := TextFrame(payload)

			r := bytes.NewReader(frame)
			got, err := readFrame(r)
			require.NoError(t, err)
			assert.Equal(t, byte(0x81), got.op, "FIN and opcode text")
			assert.Equal(t, payload, got.payload)
			assert.Zero(t, r.Len(), "bytes after the frame")
			assert.Len(t, frame, tt.want+tt.give)
		})
	}
}

func TestCloseFrame(t *testing.T) {
	long := strings.Repeat("r", 200)
	tests := []struct {
		name       string
		give       int
		giveReason string
		wantReason string
	}{
		{name: "no reason", give: 1000, giveReason: "", wantReason: ""},
		{name: "over capacity", give: 4100, giveReason: "Over capacity", wantReason: "Over capacity"},
		{name: "reason cut to the control frame limit", give: 4201, giveReason: long, wantReason: long[:123]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			frame := closeFrame(tt.give, tt.giveReason)

			r := bytes.NewReader(frame)
			got, err := readFrame(r)
			require.NoError(t, err)
			assert.Equal(t, byte(0x88), got.op, "FIN and opcode close")
			assert.Equal(t, tt.give, got.code())
			assert.Equal(t, tt.wantReason, string(got.payload[2:]))
			assert.LessOrEqual(t, len(got.payload), 125, "control frame payload limit")
			assert.Zero(t, r.Len())
		})
	}
}

func TestControlFrame(t *testing.T) {
	tests := []struct {
		name string
		give []byte
		want []byte
	}{
		{name: "empty ping", give: nil, want: []byte{}},
		{name: "short", give: []byte("abc"), want: []byte("abc")},
		{name: "cut to 125 bytes", give: bytes.Repeat([]byte{'p'}, 300), want: bytes.Repeat([]byte{'p'}, 125)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := readFrame(bytes.NewReader(controlFrame(opPing, tt.give)))
			require.NoError(t, err)
			assert.Equal(t, byte(0x89), got.op)
			assert.Equal(t, tt.want, got.payload)
		})
	}
}

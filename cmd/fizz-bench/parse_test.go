package main

import (
	"encoding/json"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fizz-server/fizz/modules/pusher"
)

func TestParseTick(t *testing.T) {
	// The frame as Fizz sends it: the data is a JSON string.
	frame := func(data []byte) []byte {
		return pusher.EncodeEvent("bench-event", "bench-0", pusher.StringData(data), "")
	}
	tests := []struct {
		name    string
		give    []byte
		wantSeq uint64
		wantTS  uint64
		wantOK  bool
	}{
		{name: "tick", give: frame(tickData(42, 1_700_000_000_123_456_789, 120)), wantSeq: 42, wantTS: 1_700_000_000_123_456_789, wantOK: true},
		{name: "no padding", give: frame(tickData(0, 7, 0)), wantSeq: 0, wantTS: 7, wantOK: true},
		{name: "seq in channel name only", give: []byte(`{"event":"x","channel":"seq-1","data":"{}"}`)},
		{name: "subscription succeeded", give: []byte(`{"event":"pusher_internal:subscription_succeeded","channel":"bench-0","data":"{}"}`)},
		{name: "missing ts", give: []byte(`{"data":"{\"seq\":1}"}`)},
		{name: "seq not a number", give: []byte(`{"data":"{\"seq\":x,\"ts\":1}"}`)},
		{name: "number too long", give: []byte(`{"data":"{\"seq\":12345678901234567890123,\"ts\":1}"}`)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			seq, ts, ok := parseTick(tt.give)
			assert.Equal(t, tt.wantOK, ok)
			if tt.wantOK {
				assert.Equal(t, tt.wantSeq, seq)
				assert.Equal(t, tt.wantTS, ts)
			}
		})
	}
}

func TestTickDataSizeAndShape(t *testing.T) {
	tests := []struct {
		give int
		want int
	}{
		{give: minPayload, want: minPayload},
		{give: 100, want: 100},
		{give: maxPayload, want: maxPayload},
	}
	for _, tt := range tests {
		data := tickData(9_999_999, math.MaxInt64, tt.give)
		assert.Len(t, data, tt.want)
		var v struct {
			Seq int64  `json:"seq"`
			TS  int64  `json:"ts"`
			Pad string `json:"pad"`
		}
		require.NoError(t, json.Unmarshal(data, &v))
		assert.Equal(t, int64(9_999_999), v.Seq)
	}
}

func TestEventName(t *testing.T) {
	tests := []struct {
		give string
		want string
	}{
		{give: `{"event":"pusher:ping","data":{}}`, want: "pusher:ping"},
		{give: `{"data":{},"event":"pusher:error"}`, want: "pusher:error"},
		{give: `{"data":{}}`, want: ""},
		{give: `{"event":"unterminated`, want: ""},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, string(eventName([]byte(tt.give))), tt.give)
	}
}

func TestTriggerBody(t *testing.T) {
	cfg := config{AppID: "app-id", EventName: "bench-event", Payload: 80}
	tr := &trigger{cfg: &cfg}
	body := tr.body(3, 99, "bench-1")
	var v struct {
		Name    string `json:"name"`
		Channel string `json:"channel"`
		Data    string `json:"data"`
	}
	require.NoError(t, json.Unmarshal(body, &v))
	assert.Equal(t, "bench-event", v.Name)
	assert.Equal(t, "bench-1", v.Channel)
	assert.Equal(t, string(tickData(3, 99, 80)), v.Data)
}

func TestParseVmRSS(t *testing.T) {
	tests := []struct {
		name    string
		give    string
		want    int64
		wantErr bool
	}{
		{name: "status", give: "Name:\tfizz\nVmPeak:\t 999 kB\nVmRSS:\t   12345 kB\nThreads: 4\n", want: 12345 << 10},
		{name: "missing", give: "Name:\tfizz\n", wantErr: true},
		{name: "bad unit", give: "VmRSS:\t 1 MB\n", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseVmRSS([]byte(tt.give))
			if tt.wantErr {
				assert.Error(t, err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestParseStatCPU(t *testing.T) {
	tests := []struct {
		name    string
		give    string
		want    time.Duration
		wantErr bool
	}{
		{name: "plain", give: "1234 (fizz) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 30 0 0 20 0 8 0",
			want: 280 * clockTick},
		{name: "name with spaces and parens", give: "1234 (a (b) c) R 1 1 1 0 -1 0 0 0 0 0 7 3 0 0 20 0 1 0",
			want: 10 * clockTick},
		{name: "truncated", give: "1234 (fizz) S 1 2", wantErr: true},
		{name: "no name", give: "1234 fizz", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseStatCPU([]byte(tt.give))
			if tt.wantErr {
				assert.Error(t, err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestParseSyscw(t *testing.T) {
	got, err := parseSyscw([]byte("rchar: 10\nwchar: 20\nsyscr: 3\nsyscw: 4\nread_bytes: 0\n"))
	require.NoError(t, err)
	assert.Equal(t, int64(4), got)
	_, err = parseSyscw([]byte("rchar: 10\n"))
	assert.Error(t, err)
}

func TestSampleSelf(t *testing.T) {
	s, err := sampleProc("self")
	require.NoError(t, err)
	assert.Positive(t, s.RSS)
}

func TestPct(t *testing.T) {
	v := []uint32{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	assert.Equal(t, uint32(5), pct(v, 50))
	assert.Equal(t, uint32(10), pct(v, 99))
	assert.Equal(t, uint32(10), pct(v, 100))
	assert.Equal(t, uint32(0), pct(nil, 50))
}

package main

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"time"
)

// clockTick is USER_HZ, the unit of utime and stime in /proc/PID/stat: 100
// on every Linux architecture Go supports.
const clockTick = 10 * time.Millisecond

// procSample is a process's resource use at one moment.
type procSample struct {
	RSS    int64         // bytes (VmRSS)
	CPU    time.Duration // user + system
	Writes int64         // write syscalls (syscw in /proc/PID/io); -1 when unreadable
}

// sampleProcs sums the samples of pids.
func sampleProcs(pids []int) (procSample, error) {
	var total procSample
	for _, pid := range pids {
		s, err := sampleProc(strconv.Itoa(pid))
		if err != nil {
			return procSample{}, err
		}
		total.RSS += s.RSS
		total.CPU += s.CPU
		if s.Writes < 0 || total.Writes < 0 {
			total.Writes = -1
		} else {
			total.Writes += s.Writes
		}
	}
	return total, nil
}

// sampleProc reads /proc/<pid>/status and /proc/<pid>/stat; pid may be "self".
func sampleProc(pid string) (procSample, error) {
	status, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		return procSample{}, fmt.Errorf("process %s: %w", pid, err)
	}
	rss, err := parseVmRSS(status)
	if err != nil {
		return procSample{}, fmt.Errorf("process %s: %w", pid, err)
	}
	stat, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return procSample{}, fmt.Errorf("process %s: %w", pid, err)
	}
	cpu, err := parseStatCPU(stat)
	if err != nil {
		return procSample{}, fmt.Errorf("process %s: %w", pid, err)
	}
	writes := int64(-1)
	if io, err := os.ReadFile("/proc/" + pid + "/io"); err == nil { // needs ptrace access
		if n, err := parseSyscw(io); err == nil {
			writes = n
		}
	}
	return procSample{RSS: rss, CPU: cpu, Writes: writes}, nil
}

// parseSyscw reads the "syscw: 1234" line of /proc/PID/io: the write,
// writev and similar calls the process made, one per coalesced batch.
func parseSyscw(io []byte) (int64, error) {
	for line := range bytes.SplitSeq(io, []byte("\n")) {
		if rest, ok := bytes.CutPrefix(line, []byte("syscw:")); ok {
			return strconv.ParseInt(string(bytes.TrimSpace(rest)), 10, 64)
		}
	}
	return 0, fmt.Errorf("no syscw line in io")
}

// parseVmRSS reads the "VmRSS:  1234 kB" line of /proc/PID/status.
func parseVmRSS(status []byte) (int64, error) {
	for line := range bytes.SplitSeq(status, []byte("\n")) {
		rest, ok := bytes.CutPrefix(line, []byte("VmRSS:"))
		if !ok {
			continue
		}
		f := bytes.Fields(rest)
		if len(f) != 2 || string(f[1]) != "kB" {
			break
		}
		kb, err := strconv.ParseInt(string(f[0]), 10, 64)
		if err != nil {
			break
		}
		return kb << 10, nil
	}
	return 0, fmt.Errorf("no VmRSS line in status")
}

// parseStatCPU returns utime + stime from /proc/PID/stat. The command name
// (field 2) may hold spaces and parentheses, so fields are counted from the
// last ')': utime and stime are fields 14 and 15.
func parseStatCPU(stat []byte) (time.Duration, error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("stat: no command name")
	}
	f := bytes.Fields(stat[i+1:]) // f[0] is field 3 (state)
	if len(f) < 13 {
		return 0, fmt.Errorf("stat: %d fields after the name, want 13 or more", len(f))
	}
	utime, err1 := strconv.ParseInt(string(f[11]), 10, 64)
	stime, err2 := strconv.ParseInt(string(f[12]), 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("stat: utime %q stime %q are not numbers", f[11], f[12])
	}
	return time.Duration(utime+stime) * clockTick, nil
}

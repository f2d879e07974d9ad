package main

import "syscall"

// ipBindAddressNoPort is IP_BIND_ADDRESS_NO_PORT (linux/in.h), which the
// syscall package does not define.
const ipBindAddressNoPort = 24

// bindNoPort makes a socket bound to a source address take its port at
// connect time, from the ports free for that destination, rather than at
// bind time from the ports free for every destination. Without it, sockets
// spread over -sources run out of ports early, TIME_WAIT ones included.
func bindNoPort(_, _ string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IP, ipBindAddressNoPort, 1)
	})
	if err != nil {
		return err
	}
	return serr
}

package testkit_test

import (
	"context"
	"fmt"
	"net"
	"net/smtp"
	"strconv"
	"time"

	"github.com/miekg/dns"

	"github.com/posthorn/posthorn/internal/testkit"
)

func Example() {
	d, err := testkit.NewDNS("127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer d.Close()
	mxs, err := testkit.NewMXGroup(testkit.Script{
		RcptReplies: map[string]testkit.Reply{"nobody@example.test": {Code: 550, Text: "5.1.1 no such user"}},
	}, "127.0.0.2", "127.0.0.3")
	if err != nil {
		panic(err)
	}
	defer func() {
		for _, m := range mxs {
			m.Close()
		}
	}()
	d.SetMX("example.test", testkit.MX{Pref: 10, Host: "mx1.example.test"})
	d.SetA("mx1.example.test", "127.0.0.2")

	// What a delivery agent does: MX, then A, then SMTP on the common port.
	c := new(dns.Client)
	q := new(dns.Msg).SetQuestion("example.test.", dns.TypeMX)
	r, _, _ := c.Exchange(q, d.Addr())
	host := r.Answer[0].(*dns.MX).Mx
	r, _, _ = c.Exchange(new(dns.Msg).SetQuestion(host, dns.TypeA), d.Addr())
	ip := r.Answer[0].(*dns.A).A.String()
	addr := net.JoinHostPort(ip, strconv.Itoa(mxs[0].Port()))
	err = smtp.SendMail(addr, nil, "a@sender.test", []string{"nobody@example.test"}, []byte("hi\r\n"))
	fmt.Println(err)
	_ = smtp.SendMail(addr, nil, "a@sender.test", []string{"user@example.test"}, []byte("hi\r\n"))

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	msgs, _ := mxs[0].WaitMessages(ctx, 1)
	fmt.Printf("%s %q %q\n", host, msgs[0].To, msgs[0].Data)
	// Output:
	// 550 "5.1.1 no such user"
	// mx1.example.test. ["user@example.test"] "hi\r\n"
}

// Command gorilla-echo is a gorilla/websocket echo server for `cargo xtask bench-peers` and
// `cargo xtask bench-memory`, written as gorilla's own examples/echo server is: net/http
// serves the upgrade, then each connection runs ReadMessage then WriteMessage, one message at
// a time. Default Upgrader buffers (4 KiB each way). -compress sets EnableCompression
// (permessage-deflate; gorilla supports only no context takeover, level 1 by default).
// Run it with GOMAXPROCS=1 so it uses one thread for Go code, like the other peers.
//
// Built in GOPATH mode against Debian's golang-github-gorilla-websocket-dev (no module proxy
// is needed):
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go build -o gorilla-echo ./bench/peers/go/gorilla-echo
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"

	"github.com/gorilla/websocket"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:9001", "address to listen on")
	compress := flag.Bool("compress", false, "negotiate permessage-deflate (no context takeover)")
	flag.Parse()

	upgrader := websocket.Upgrader{EnableCompression: *compress}
	echo := func(w http.ResponseWriter, r *http.Request) {
		c, err := upgrader.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		for {
			mt, message, err := c.ReadMessage()
			if err != nil {
				return
			}
			if err := c.WriteMessage(mt, message); err != nil {
				return
			}
		}
	}

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintf(os.Stderr, "gorilla-echo: %v\n", err)
		os.Exit(1)
	}
	deflate := ""
	if *compress {
		deflate = ", permessage-deflate"
	}
	fmt.Printf("gorilla-echo: listening on %s%s\n", ln.Addr(), deflate)
	// Every path upgrades, as with the other peers (the bench tools use /ws).
	log.Fatal(http.Serve(ln, http.HandlerFunc(echo)))
}

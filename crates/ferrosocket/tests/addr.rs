//! `Conn::peer_addr` / `Conn::local_addr` over plain TCP and over TLS, on both ends: the
//! server's `Conn<ServerTlsStream<TcpStream>>`, the Dialer's `Conn<MaybeTlsStream>`, and a
//! client `Conn<ClientTlsStream<TcpStream>>` built by hand. Every wait is bounded.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::connect;
use ferrosocket::{SocketAddrs, Upgrader};
use std::net::SocketAddr;

/// Both addresses of anything with them, through the trait (so the impls are checked too).
fn addrs_of<T: SocketAddrs>(t: &T) -> (SocketAddr, SocketAddr) {
    (t.local_addr().unwrap(), t.peer_addr().unwrap())
}

#[tokio::test]
async fn tcp_conn_reports_both_addresses() {
    let (conn, client) = connect(&Upgrader::new()).await;
    assert_eq!(conn.peer_addr().unwrap(), client.io.local_addr().unwrap());
    assert_eq!(conn.local_addr().unwrap(), client.io.peer_addr().unwrap());
    assert_eq!(
        addrs_of(conn.get_ref()),
        (conn.local_addr().unwrap(), conn.peer_addr().unwrap())
    );
}

#[cfg(feature = "rustls")]
mod tls {
    use super::*;
    use common::within;
    use ferrosocket::Message;
    use ferrosocket::tls::rustls::RootCertStore;
    use ferrosocket::tls::rustls::pki_types::{
        CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName,
    };
    use ferrosocket::tls::{ServerTlsStream, TlsAcceptor, client_config_with_roots, server_config};
    use ferrosocket::{Conn, Dialer};
    use std::sync::Arc;
    use std::time::Duration;
    use tokio::net::{TcpListener, TcpStream};
    use tokio_rustls::TlsConnector;

    /// A wss server that answers each connection's first message with what its own `Conn`
    /// reports: `"<peer_addr> <local_addr>"`.
    async fn wss_addr_server(
        config: Arc<ferrosocket::tls::rustls::ServerConfig>,
    ) -> (SocketAddr, tokio::task::JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let acceptor = TlsAcceptor::from(config);
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let tls = within("tls accept", acceptor.accept(tcp)).await.unwrap();
                let mut conn: Conn<ServerTlsStream<TcpStream>> =
                    within("upgrade", Upgrader::new().accept(tls)).await.unwrap();
                let (peer, local) = (conn.peer_addr().unwrap(), conn.local_addr().unwrap());
                assert_eq!(addrs_of(conn.get_ref()), (local, peer));
                assert_eq!(addrs_of(conn.get_ref().get_ref().0), (local, peer));
                assert_eq!(local, addr);
                within("server recv", conn.recv()).await.unwrap();
                within("server send", conn.send(format!("{peer} {local}")))
                    .await
                    .unwrap();
                let _ = within("server close", conn.recv()).await;
            }
        });
        (addr, task)
    }

    struct Setup {
        addr: SocketAddr,
        roots: RootCertStore,
        server: tokio::task::JoinHandle<()>,
    }

    async fn setup() -> Setup {
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let der: CertificateDer<'static> = ck.cert.der().clone();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.signing_key.serialize_der()));
        let (addr, server) = wss_addr_server(server_config(vec![der.clone()], key).unwrap()).await;
        let mut roots = RootCertStore::empty();
        roots.add(der).unwrap();
        Setup { addr, roots, server }
    }

    /// Asks the server what its `Conn` reports and checks it mirrors the client's.
    async fn check_mirrored<S>(conn: &mut Conn<S>, server: SocketAddr)
    where
        S: SocketAddrs + tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        let (local, peer) = (conn.local_addr().unwrap(), conn.peer_addr().unwrap());
        assert_eq!(peer, server);
        assert_eq!(addrs_of(conn.get_ref()), (local, peer));
        within("client send", conn.send("addrs?")).await.unwrap();
        let reply = within("client recv", conn.recv()).await.unwrap();
        assert_eq!(reply, Message::text(format!("{local} {peer}")));
        within("client close", conn.close(None)).await.unwrap();
    }

    #[tokio::test]
    async fn wss_both_ends_report_the_tcp_addresses() {
        let Setup { addr, roots, server } = setup().await;

        // The Dialer's transport.
        let dialer = Dialer::new()
            .proxy_from_env(false)
            .handshake_timeout(Some(Duration::from_secs(5)))
            .tls_config(client_config_with_roots(roots.clone()).unwrap());
        let url = format!("wss://localhost:{}/", addr.port());
        let (mut conn, _) = within("dial", dialer.connect(&url)).await.unwrap();
        assert!(conn.get_ref().is_tls());
        check_mirrored_dialer(&mut conn, addr).await;

        // rustls' client stream over TCP, handed to the Dialer.
        let tcp = within("tcp", TcpStream::connect(addr)).await.unwrap();
        let connector = TlsConnector::from(client_config_with_roots(roots).unwrap());
        let name = ServerName::try_from("localhost").unwrap();
        let tls = within("tls connect", connector.connect(name, tcp)).await.unwrap();
        let req = ferrosocket::proto::request_from_url(&url).unwrap();
        let (mut conn, _) = within("handshake", dialer.connect_with_stream(tls, req))
            .await
            .unwrap();
        check_mirrored(&mut conn, addr).await;

        server.abort();
    }

    /// [`check_mirrored`] for the Dialer's `Conn<MaybeTlsStream>`, whose address methods are
    /// its own (see `MaybeTlsStream`).
    async fn check_mirrored_dialer(conn: &mut Conn<ferrosocket::MaybeTlsStream>, server: SocketAddr) {
        let (local, peer) = (conn.local_addr().unwrap(), conn.peer_addr().unwrap());
        assert_eq!(peer, server);
        within("client send", conn.send("addrs?")).await.unwrap();
        let reply = within("client recv", conn.recv()).await.unwrap();
        assert_eq!(reply, Message::text(format!("{local} {peer}")));
        within("client close", conn.close(None)).await.unwrap();
    }
}

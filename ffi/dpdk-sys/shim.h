/*
 * Out-of-line copies of DPDK's static inline fast-path functions, which bindgen cannot
 * bind. Each forwards its arguments unchanged.
 */
#ifndef SVRD_DPDK_SHIM_H
#define SVRD_DPDK_SHIM_H

#include <stdint.h>

struct rte_mbuf;
struct rte_mempool;

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

#endif

/* See shim.h. */
#include <rte_config.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>

#include "shim.h"

uint16_t svr_rx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **mbufs, uint16_t count)
{
	return rte_eth_rx_burst(port, queue, mbufs, count);
}

uint16_t svr_tx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **mbufs, uint16_t count)
{
	return rte_eth_tx_burst(port, queue, mbufs, count);
}

struct rte_mbuf *svr_pktmbuf_alloc(struct rte_mempool *pool)
{
	return rte_pktmbuf_alloc(pool);
}

void svr_pktmbuf_free(struct rte_mbuf *mbuf)
{
	rte_pktmbuf_free(mbuf);
}

void *svr_pktmbuf_mtod(struct rte_mbuf *mbuf)
{
	return rte_pktmbuf_mtod(mbuf, void *);
}

char *svr_pktmbuf_append(struct rte_mbuf *mbuf, uint16_t len)
{
	return rte_pktmbuf_append(mbuf, len);
}

char *svr_pktmbuf_prepend(struct rte_mbuf *mbuf, uint16_t len)
{
	return rte_pktmbuf_prepend(mbuf, len);
}

char *svr_pktmbuf_adj(struct rte_mbuf *mbuf, uint16_t len)
{
	return rte_pktmbuf_adj(mbuf, len);
}

int svr_pktmbuf_trim(struct rte_mbuf *mbuf, uint16_t len)
{
	return rte_pktmbuf_trim(mbuf, len);
}

uint32_t svr_pktmbuf_pkt_len(const struct rte_mbuf *mbuf)
{
	return rte_pktmbuf_pkt_len(mbuf);
}

uint16_t svr_pktmbuf_data_len(const struct rte_mbuf *mbuf)
{
	return rte_pktmbuf_data_len(mbuf);
}

uint16_t svr_pktmbuf_headroom(const struct rte_mbuf *mbuf)
{
	return rte_pktmbuf_headroom(mbuf);
}

uint16_t svr_pktmbuf_tailroom(const struct rte_mbuf *mbuf)
{
	return rte_pktmbuf_tailroom(mbuf);
}

/* rte_errno is a per-lcore thread-local macro, not a symbol. */
int svr_errno(void)
{
	return rte_errno;
}

void svr_pktmbuf_view(const struct rte_mbuf *mbuf, struct svr_mbuf_view *view)
{
	view->buf_addr = mbuf->buf_addr;
	view->pkt_len = mbuf->pkt_len;
	view->buf_len = mbuf->buf_len;
	view->data_off = mbuf->data_off;
	view->data_len = mbuf->data_len;
	view->nb_segs = mbuf->nb_segs;
	view->refcnt = rte_mbuf_refcnt_read(mbuf);
	view->direct = RTE_MBUF_DIRECT(mbuf) ? 1 : 0;
}

void svr_pktmbuf_set_data(struct rte_mbuf *mbuf, uint16_t data_off, uint16_t data_len)
{
	mbuf->data_off = data_off;
	mbuf->data_len = data_len;
	mbuf->pkt_len = data_len;
	mbuf->ol_flags &= ~RTE_MBUF_F_TX_OFFLOAD_MASK;
}

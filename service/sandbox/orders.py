"""Orders the sandbox knows, and the order detail Shopee would return for them.

An order is known when the push sender (in process or through `POST /sandbox/orders`)
registered it; the latest `update_time` wins, as on Shopee. With auto-orders on, any other
SN exists too, as READY_TO_SHIP, except SNs with the "unknown" prefix. Every other field is
a deterministic function of (shop_id, order_sn), so repeated calls agree.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from typing import Any

REGIONS = (("SG", "SGD"), ("MY", "MYR"), ("TH", "THB"), ("ID", "IDR"), ("PH", "PHP"), ("VN", "VND"), ("BR", "BRL"))
CARRIERS = ("Standard Delivery", "Ninja Van", "J&T Express", "SPX Express", "Flash Express")
PAYMENTS = ("Credit/Debit Card", "ShopeePay", "Bank Transfer", "Cash on Delivery")
BASE_FIELDS = ("order_sn", "region", "currency", "cod", "order_status", "create_time", "update_time")


@dataclass(frozen=True, slots=True)
class KnownOrder:
    shop_id: int
    order_sn: str
    order_status: str
    update_time: int
    create_time: int


def _rng(shop_id: int, order_sn: str) -> random.Random:
    digest = hashlib.sha256(f"{shop_id}|{order_sn}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


@dataclass(slots=True)
class OrderBook:
    epoch: int  # auto-orders are created before this time
    auto_orders: bool = True
    unknown_prefix: str = "UNKNOWN"
    _orders: dict[tuple[int, str], KnownOrder] = field(default_factory=dict)

    def register(
        self, shop_id: int, order_sn: str, order_status: str, update_time: int, create_time: int | None = None
    ) -> KnownOrder:
        """Record an order's state; an older update never replaces a newer one."""
        key = (shop_id, order_sn)
        existing = self._orders.get(key)
        if existing is not None and existing.update_time > update_time:
            return existing
        if create_time is None:
            create_time = existing.create_time if existing else update_time - _rng(shop_id, order_sn).randint(60, 3600)
        order = KnownOrder(shop_id, order_sn, order_status, update_time, min(create_time, update_time))
        self._orders[key] = order
        return order

    def lookup(self, shop_id: int, order_sn: str) -> KnownOrder | None:
        order = self._orders.get((shop_id, order_sn))
        if order is not None:
            return order
        if not self.auto_orders or (self.unknown_prefix and order_sn.startswith(self.unknown_prefix)):
            return None
        rng = _rng(shop_id, order_sn)
        create_time = self.epoch - rng.randint(3600, 86400)
        return KnownOrder(shop_id, order_sn, "READY_TO_SHIP", create_time + rng.randint(60, 3000), create_time)

    def listed(self, shop_id: int, field: str, time_from: int, time_to: int, status: str | None) -> list[KnownOrder]:
        """The shop's registered orders whose `field` lies in [time_from, time_to], oldest first."""
        found = [
            o
            for (shop, _), o in self._orders.items()
            if shop == shop_id
            and time_from <= getattr(o, field) <= time_to
            and (status is None or o.order_status == status)
        ]
        return sorted(found, key=lambda o: (getattr(o, field), o.order_sn))

    def __len__(self) -> int:
        return len(self._orders)


def order_detail(order: KnownOrder, optional_fields: set[str]) -> dict[str, Any]:
    """One `order_list` entry: the always-present fields plus the requested optional ones."""
    rng = _rng(order.shop_id, order.order_sn)
    region, currency = REGIONS[order.shop_id % len(REGIONS)]
    payment = rng.choice(PAYMENTS)
    days_to_ship = rng.choice((2, 3))
    items = _items(rng, order)
    total = round(sum(i["model_discounted_price"] * i["model_quantity_purchased"] for i in items), 2)
    shipping_fee = round(rng.uniform(1.0, 8.0), 2)
    carrier = rng.choice(CARRIERS)
    detail: dict[str, Any] = {
        "order_sn": order.order_sn,
        "region": region,
        "currency": currency,
        "cod": payment == "Cash on Delivery",
        "order_status": order.order_status,
        "create_time": order.create_time,
        "update_time": order.update_time,
        "days_to_ship": days_to_ship,
        "ship_by_date": order.create_time + days_to_ship * 86400,
        "message_to_seller": rng.choice(("", "", "", "Please pack carefully, thanks!")),
        "pending_terms": [],
        "booking_sn": "",
    }
    optional: dict[str, Any] = {
        "buyer_user_id": rng.randint(10_000_000, 999_999_999),
        "buyer_username": f"buyer_{rng.randint(1000, 99999)}",
        "estimated_shipping_fee": shipping_fee,
        "actual_shipping_fee": shipping_fee,
        "actual_shipping_fee_confirmed": order.order_status in ("SHIPPED", "TO_CONFIRM_RECEIVE", "COMPLETED"),
        "recipient_address": {
            "name": "S****** B****",
            "phone": "******89",
            "town": "",
            "district": "",
            "city": "Sandbox City",
            "state": "",
            "region": region,
            "zipcode": f"{rng.randint(10000, 99999)}",
            "full_address": "****** Sandbox Street, Sandbox City",
        },
        "goods_to_declare": False,
        "note": "",
        "note_update_time": 0,
        "item_list": items,
        "pay_time": order.create_time + rng.randint(30, 600) if order.order_status != "UNPAID" else None,
        "dropshipper": "",
        "dropshipper_phone": "",
        "split_up": False,
        "buyer_cancel_reason": "",
        "cancel_by": "system" if order.order_status == "CANCELLED" else "",
        "cancel_reason": "Out of Stock" if order.order_status == "CANCELLED" else "",
        "buyer_cpf_id": "",
        "fulfillment_flag": "fulfilled_by_local_seller",
        "pickup_done_time": 0,
        "package_list": [
            {
                "package_number": f"OFG{rng.randint(10**14, 10**15 - 1)}",
                "logistics_status": "LOGISTICS_READY",
                "shipping_carrier": carrier,
                "item_list": [{"item_id": i["item_id"], "model_id": i["model_id"]} for i in items],
            }
        ],
        "shipping_carrier": carrier,
        "payment_method": payment,
        "total_amount": round(total + shipping_fee, 2),
        "invoice_data": None,
        "order_chargeable_weight_gram": sum(int(i["weight"] * 1000) for i in items),
        "return_request_due_date": None,
        "edt": None,
    }
    for name in optional_fields:
        if name in optional and optional[name] is not None:
            detail[name] = optional[name]
    return detail


def _items(rng: random.Random, order: KnownOrder) -> list[dict[str, Any]]:
    items = []
    for n in range(rng.randint(1, 3)):
        price = round(rng.uniform(5.0, 120.0), 2)
        items.append(
            {
                "item_id": rng.randint(10**9, 10**10),
                "item_name": f"Sandbox product {rng.randint(1, 500)}",
                "item_sku": f"SKU-{rng.randint(1000, 9999)}",
                "model_id": rng.randint(10**9, 10**10),
                "model_name": rng.choice(("", "Red", "Blue", "L", "XL")),
                "model_sku": "",
                "model_quantity_purchased": rng.randint(1, 3),
                "model_original_price": price,
                "model_discounted_price": round(price * rng.choice((1.0, 0.9, 0.8)), 2),
                "wholesale": False,
                "weight": round(rng.uniform(0.1, 2.0), 2),
                "add_on_deal": False,
                "main_item": False,
                "add_on_deal_id": 0,
                "promotion_type": "",
                "promotion_id": 0,
                "order_item_id": rng.randint(10**9, 10**10),
                "promotion_group_id": 0,
                "image_info": {"image_url": f"https://cf.shopee.sg/file/sandbox-{order.shop_id}-{n}"},
            }
        )
    return items

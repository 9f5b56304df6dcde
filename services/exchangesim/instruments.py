"""Tradable instruments (USDT linear perpetuals and spot pairs) and their order filters."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal

from services.exchangesim import errors
from services.exchangesim.errors import BybitError

CATEGORIES = ("linear", "spot")
ZERO = Decimal(0)


def fmt(value: Decimal) -> str:
    """Plain decimal text without exponent or trailing zeros, as Bybit writes numbers."""
    if value == 0:
        return "0"
    text = format(value.normalize(), "f")
    return text


def fmt_q(value: Decimal, step: Decimal) -> str:
    """Text with exactly the decimals of `step` (prices with the tick's decimals, like Bybit)."""
    exponent = step.normalize().as_tuple().exponent
    places = -exponent if isinstance(exponent, int) and exponent < 0 else 0
    return f"{value:.{places}f}"


def floor_to(value: Decimal, step: Decimal) -> Decimal:
    return (value / step).to_integral_value(rounding=ROUND_FLOOR) * step


def parse_decimal(name: str, text: object) -> Decimal:
    try:
        value = Decimal(str(text))
    except ArithmeticError:
        raise errors.params(f"params error: {name} invalid, got {text!r}") from None
    if not value.is_finite():
        raise errors.params(f"params error: {name} invalid, got {text!r}")
    return value


@dataclass(frozen=True)
class Instrument:
    """One symbol in one category with Bybit's filters."""

    category: str
    symbol: str
    base_coin: str
    quote_coin: str
    tick_size: Decimal
    qty_step: Decimal
    min_qty: Decimal
    max_qty: Decimal
    min_notional: Decimal
    max_leverage: Decimal
    taker_fee: Decimal
    maker_fee: Decimal

    def check_qty(self, qty: Decimal, *, quote_amount: bool = False) -> None:
        """Reject a quantity off the step grid or outside the limits, with Bybit's codes."""
        spot = self.category == "spot"
        if qty <= 0:
            raise errors.params("params error: qty must be greater than 0")
        if quote_amount:
            return
        if qty % self.qty_step != 0:
            if spot:
                raise BybitError(errors.SPOT_QTY_DECIMALS, "Order quantity has too many decimals.")
            raise errors.params(f"Qty invalid: {fmt(qty)} is not a multiple of qtyStep {fmt(self.qty_step)}")
        if qty < self.min_qty:
            if spot:
                raise BybitError(errors.SPOT_QTY_LOWER_LIMIT, "Order quantity exceeded lower limit.")
            raise errors.params(f"Qty invalid: {fmt(qty)} is below minOrderQty {fmt(self.min_qty)}")
        if qty > self.max_qty:
            raise errors.params(f"Qty invalid: {fmt(qty)} is above maxOrderQty {fmt(self.max_qty)}")

    def check_price(self, name: str, price: Decimal) -> None:
        if price <= 0:
            raise errors.params(f"params error: {name} must be greater than 0")
        if price % self.tick_size != 0:
            if self.category == "spot":
                raise BybitError(errors.SPOT_PRICE_DECIMALS, "Order price has too many decimals.")
            raise errors.params(
                f"{name} invalid: {fmt(price)} is not a multiple of tickSize {fmt(self.tick_size)}"
            )

    def check_notional(self, value: Decimal) -> None:
        if value >= self.min_notional:
            return
        if self.category == "spot":
            raise BybitError(errors.SPOT_VALUE_LOWER_LIMIT, "Order value exceeded lower limit.")
        raise BybitError(
            errors.MIN_ORDER_VALUE,
            f"Order does not meet minimum order value {fmt(self.min_notional)}USDT",
        )


# Filters of the real instruments for the bundled data; anything else is derived from its price.
KNOWN = {
    ("linear", "SOLUSDT"): ("0.01", "0.1", "0.1", "79770", "5", "100"),
    ("linear", "XRPUSDT"): ("0.0001", "1", "1", "1290000", "5", "75"),
    ("spot", "SOLUSDT"): ("0.01", "0.001", "0.001", "12000", "5", "1"),
    ("spot", "XRPUSDT"): ("0.0001", "0.01", "0.01", "1000000", "5", "1"),
}


def split_symbol(symbol: str) -> tuple[str, str]:
    for quote in ("USDT", "USDC", "BTC"):
        if symbol.endswith(quote) and len(symbol) > len(quote):
            return symbol[: -len(quote)], quote
    return symbol, "USDT"


def derive(category: str, symbol: str, price: Decimal) -> Instrument:
    """The instrument for `symbol`, from the known table or derived from a typical price."""
    base, quote = split_symbol(symbol)
    known = KNOWN.get((category, symbol))
    if known:
        tick, step, min_qty, max_qty, notional, lev = (Decimal(v) for v in known)
    else:
        magnitude = price.adjusted()  # floor(log10(price))
        tick = Decimal(1).scaleb(magnitude - 4)
        step = Decimal(1).scaleb((1 if category == "linear" else -1) - magnitude)
        min_qty, max_qty = step, step * 1_000_000
        notional, lev = Decimal(5), Decimal(100 if category == "linear" else 1)
    taker, maker = (
        (Decimal("0.00055"), Decimal("0.0002")) if category == "linear" else (Decimal("0.001"),) * 2
    )
    return Instrument(
        category, symbol, base, quote, tick, step, min_qty, max_qty, notional, lev, taker, maker
    )


class Catalog:
    """Every instrument the simulator lists, by (category, symbol)."""

    def __init__(self) -> None:
        self._items: dict[tuple[str, str], Instrument] = {}

    def add(self, instrument: Instrument) -> None:
        self._items[(instrument.category, instrument.symbol)] = instrument

    def all(self, category: str) -> list[Instrument]:
        return [i for (c, _), i in sorted(self._items.items()) if c == category]

    def get(self, category: str, symbol: str) -> Instrument:
        check_category(category)
        item = self._items.get((category, symbol))
        if item is None:
            raise errors.params(f"params error: symbol invalid, {symbol!r} is not listed in {category}")
        return item

    def symbols(self) -> list[str]:
        return sorted({s for _, s in self._items})


def check_category(category: str) -> None:
    if category not in CATEGORIES:
        raise errors.params(f"Illegal category: {category!r}; the simulator lists linear and spot")

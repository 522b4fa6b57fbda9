"""Wangban sharing service.

Data-sharing lookups instead of certificates (免证明) and the e-certificate library (电子证照).
"""

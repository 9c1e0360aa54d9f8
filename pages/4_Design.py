"""Design page: a cluster from its formula (placeholder)."""
import streamlit as st

st.title("Design a cluster from its formula")
